/** Chooses and opens the store from server options. */
import { MongoStore } from './mongo-store.js';
import { SqliteStore } from './sqlite-store.js';
import type { Store } from './store.js';

/** Directory of the embedded store when none is given (relative to the working directory). */
export const DEFAULT_DATA_DIR = '.taskgate';

/** Where the server keeps its data. */
export interface StoreOptions {
  /** MongoDB connection string; when empty the embedded store is used. */
  mongodbUri?: string;
  /** Directory of the embedded store. Default "./.taskgate". */
  dataDir?: string;
}

/** Opens and initialises the configured store. */
export async function openStore(options: StoreOptions): Promise<Store> {
  const store: Store = options.mongodbUri
    ? new MongoStore({ uri: options.mongodbUri })
    : new SqliteStore(options.dataDir ?? DEFAULT_DATA_DIR);
  try {
    await store.init();
  } catch (err) {
    await store.close().catch(() => undefined);
    throw err;
  }
  return store;
}
