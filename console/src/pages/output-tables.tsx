/**
 * The "Table" view of a finished database task: its output (up to the
 * last 1 MiB) read once and parsed as psql or mysql tables
 * (output-table.ts); shown only when it parses. Cells are text.
 */
import { useEffect, useState } from 'preact/hooks';
import type { Task } from '../../../gen/es/taskgate/v1/task_pb.js';
import { taskService } from '../api.js';
import { TableWrap } from '../components.js';
import { parseTables, type OutputTable } from '../output-table.js';

const MAX_BYTES = 1024 * 1024;

async function readOutput(task: Task, signal: AbortSignal): Promise<string> {
  const total = Number(task.outputBytes);
  const start = Math.max(0, total - MAX_BYTES);
  const parts: Uint8Array[] = [];
  for await (const message of taskService.getTaskLogs({ id: task.id, offset: BigInt(start), limitBytes: BigInt(total - start) }, { signal })) {
    if (message.event.case === 'chunk') parts.push(message.event.value.data);
  }
  const decoder = new TextDecoder();
  return parts.map((part, i) => decoder.decode(part, { stream: i < parts.length - 1 })).join('');
}

/** A "Table" toggle under the terminal when the output holds tables. */
export function OutputTables({ task }: { task: Task }) {
  const [tables, setTables] = useState<OutputTable[]>([]);
  const [shown, setShown] = useState(false);
  useEffect(() => {
    const controller = new AbortController();
    if (task.outputBytes === 0n) return undefined;
    readOutput(task, controller.signal)
      .then((text) => setTables(parseTables(text)))
      .catch(() => setTables([]));
    return () => controller.abort();
  }, [task.id, task.outputBytes]);
  if (tables.length === 0) return null;
  return (
    <div class="output-tables">
      <button type="button" aria-pressed={shown} onClick={() => setShown(!shown)}>
        Table
      </button>
      {shown
        ? tables.map((table, i) => (
            <TableWrap key={i} label={`Result ${i + 1}`}>
              <thead>
                <tr>
                  {table.header.map((cell, j) => (
                    <th key={j} scope="col">
                      {cell}
                    </th>
                  ))}
                </tr>
              </thead>
              <tbody>
                {table.rows.map((row, j) => (
                  <tr key={j}>
                    {row.map((cell, k) => (
                      <td key={k}>{cell}</td>
                    ))}
                  </tr>
                ))}
              </tbody>
            </TableWrap>
          ))
        : null}
    </div>
  );
}
