/**
 * The two store kinds every store-dependent suite runs against: embedded
 * SQLite in a temp directory, and MongoDB (FerretDB in tests).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { StoreOptions } from '../../server/store/open-store.js';
import { mongoUri } from './mongo.js';

/** A place to keep data that outlives one server (for restart tests). */
export interface StoreLocation {
  options: StoreOptions;
  cleanup(): void;
}

/** A store kind under test. */
export interface StoreKind {
  name: 'sqlite' | 'mongodb';
  /** A fresh, empty location; null means skip (no MongoDB-wire server here). */
  location(): Promise<StoreLocation | null>;
}

export const STORE_KINDS: readonly StoreKind[] = [
  {
    name: 'sqlite',
    async location() {
      const dir = mkdtempSync(join(tmpdir(), 'taskgate-test-'));
      return { options: { dataDir: dir }, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
    },
  },
  {
    name: 'mongodb',
    async location() {
      const uri = await mongoUri();
      return uri ? { options: { mongodbUri: uri }, cleanup: () => undefined } : null;
    },
  },
];
