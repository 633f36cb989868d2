/**
 * Redaction end to end: PII in a task's output is masked on the agent, so
 * neither the live stream nor the stored output ever holds it, on success
 * and on failure alike, and the task records what was found.
 */
import { expect } from 'chai';
import { CustomDetector } from '../../gen/taskgate/v1/target.js';
import { TaskStatus, type GetTaskLogsResponse } from '../../gen/taskgate/v1/task.js';
import { Harness } from '../helpers/harness.js';
import { STORE_KINDS } from '../helpers/stores.js';

const SCRIPT = [
  'echo "user alice@example.com paid with 4111 1111 1111 1111"',
  'echo "not a card: 4111 1111 1111 1112"',
  'printf "iban DE89 3704 0044 0532 0130 00\\n"',
  // An email split across two writes with a pause between them.
  'printf "split bob@exa"; sleep 0.05; printf "mple.org done\\n"',
  'echo "ticket TCK-9912"',
];
const EXPECTED = [
  'user [EMAIL_ADDRESS] paid with [CREDIT_CARD_NUMBER]',
  'not a card: 4111 1111 1111 1112',
  'iban [IBAN_CODE]',
  'split [EMAIL_ADDRESS] done',
  'ticket [TICKET]',
].join('\r\n') + '\r\n';

for (const kind of STORE_KINDS) {
  describe(`redaction: ${kind.name}`, function () {
    let h: Harness;

    beforeEach(async function () {
      const location = await kind.location();
      if (!location) this.skip();
      h = await Harness.start(location);
      await h.startAgent('a1');
      await h.createTarget('t1', 'a1', 'bash', {
        redact: ['EMAIL_ADDRESS', 'CREDIT_CARD_NUMBER', 'IBAN_CODE'],
        customDetectors: [CustomDetector.fromPartial({ infoType: 'TICKET', pattern: 'TCK-\\d{4}' })],
      });
    });

    afterEach(async () => {
      await h?.close();
    });

    for (const [outcome, tail, status] of [
      ['success', '', TaskStatus.TASK_STATUS_SUCCESS],
      ['failure', 'exit 3', TaskStatus.TASK_STATUS_FAILURE],
    ] as const) {
      it(`masks PII in live and stored output on ${outcome}, and counts what it found`, async () => {
        const task = await h.createTask('t1', [...SCRIPT, tail].join('\n'));
        // Live: a follower from the start.
        const live: Buffer[] = [];
        const call = h.api.tasks.getTaskLogs({ id: task.id, offset: 0, follow: true, limitBytes: 0, tailBytes: 0 }, h.api.metadata);
        for await (const { event } of call as AsyncIterable<GetTaskLogsResponse>) if (event?.$case === 'chunk') live.push(Buffer.from(event.value.data));
        const stored = await h.logs(task.id, { follow: false });
        expect(Buffer.concat(live).toString()).to.equal(EXPECTED);
        expect(stored.output.toString()).to.equal(EXPECTED);
        const done = await h.getTask(task.id);
        expect(done.status).to.equal(status);
        expect(done.findings).to.deep.equal({ EMAIL_ADDRESS: 2, CREDIT_CARD_NUMBER: 1, IBAN_CODE: 1, TICKET: 1 });
      });
    }

    it('refuses unknown info types and bad patterns on the target', async () => {
      const errors = await Promise.all([
        h.createTarget('t2', 'a1', 'bash', { redact: ['SHOE_SIZE'] }).catch((e: Error) => e.message),
        h.createTarget('t3', 'a1', 'bash', { customDetectors: [CustomDetector.fromPartial({ infoType: 'X', pattern: '(' })] }).catch((e: Error) => e.message),
        h.createTarget('t4', 'a1', 'bash', { customDetectors: [CustomDetector.fromPartial({ infoType: 'X', pattern: 'a*' })] }).catch((e: Error) => e.message),
      ]);
      expect(errors[0]).to.match(/unknown info type "SHOE_SIZE"/);
      expect(errors[1]).to.match(/custom detector X: Invalid regular expression/);
      expect(errors[2]).to.match(/custom detector X matches the empty string/);
    });
  });
}
