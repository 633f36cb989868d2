/**
 * The shared setup of the Store contract (test/integration/store-contract*.test.ts):
 * every suite is declared once per store kind (test/helpers/stores.ts: the
 * embedded SQLite store and MongoDB, FerretDB v1 here), each test gets a
 * fresh location and a store opened on it, and the tasks and moves the
 * tests build.
 */
import { openStore } from '../../server/store/open-store.js';
import type { Store, TaskRecord } from '../../server/store/store.js';
import type { TaskStatus } from '../../shared/task-status.js';
import { taskRecord } from './records.js';
import { STORE_KINDS, type StoreKind, type StoreLocation } from './stores.js';

/** A created task with a message and a script (test/helpers/records.ts), with `overrides`. */
export function task(overrides: Partial<TaskRecord> = {}): TaskRecord {
  return taskRecord({ message: 'why', script: 'echo hi', ...overrides });
}

/** A transition of task `id` from one of `from` to `to` with `patch`, by actor "test", now. */
export function move(id: string, from: TaskStatus[], to: TaskStatus, patch = {}) {
  return { id, from, to, patch, actor: 'test', reason: `to ${to}`, time: new Date() };
}

/** What a suite gets before each test: a fresh location and a store opened on it. */
export interface OpenedStore {
  location: StoreLocation;
  store: Store;
}

/** Declares `suite` once per store kind, titled "Store contract: <title>, <kind>"; it opens its stores with {@link openStoreEach}. */
export function describeStoreContract(title: string, suite: (kind: StoreKind) => void): void {
  for (const kind of STORE_KINDS) {
    describe(`Store contract: ${title}, ${kind.name}`, function () {
      suite(kind);
    });
  }
}

/**
 * The hooks of a contract suite: before each test, a fresh location of
 * `kind` and a store opened on it go to `opened` (the test is skipped when
 * the kind has none here: no MongoDB-wire server); after it, the store
 * `current` returns is closed (a test may have reopened it) and the
 * location removed.
 */
export function openStoreEach(kind: StoreKind, opened: (store: OpenedStore) => void, current: () => Store | undefined): void {
  let location: StoreLocation | undefined;
  beforeEach(async function () {
    const loc = await kind.location();
    if (!loc) this.skip();
    location = loc;
    opened({ location, store: await openStore(location.options) });
  });

  afterEach(async () => {
    await current()?.close();
    location?.cleanup();
  });
}
