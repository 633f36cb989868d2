/**
 * The MongoDB store's users and tokens (UserStore): `users` by email and
 * `tokens` by id. A user's update and a token's lastUsed refresh and
 * revocation run under a lock of their own (`user:EMAIL`, `token:ID`):
 * on FerretDB racing `$set`s of one document can lose updates, and a
 * refresh racing a revocation could write `revoked: null` back
 * (docs/design.md "Storage").
 */
import type { Collection } from 'mongodb';
import { AlreadyExistsError } from '../../shared/errors.js';
import type { DocumentLocks } from './mongo-locks.js';
import { isDuplicateKey, toToken, toTokenDoc, toUser, toUserDoc, type TaskDoc, type TokenDoc, type UserDoc } from './mongo-docs.js';
import { tokensToRecheck } from './mongo-token-states.js';
import type { TokenRecord, UserPatch, UserRecord } from './records.js';

/** Users and tokens; its methods are UserStore's, by the same names. */
export class MongoAccess {
  readonly #users: Collection<UserDoc>;
  readonly #tokens: Collection<TokenDoc>;
  readonly #locks: DocumentLocks<TaskDoc>;

  constructor(users: Collection<UserDoc>, tokens: Collection<TokenDoc>, locks: DocumentLocks<TaskDoc>) {
    this.#users = users;
    this.#tokens = tokens;
    this.#locks = locks;
  }

  async insertUser(user: UserRecord): Promise<void> {
    const { email } = user;
    try {
      await this.#users.insertOne(toUserDoc(user));
    } catch (err) {
      if (isDuplicateKey(err)) throw new AlreadyExistsError(`user ${email} already exists`, { cause: err });
      throw err;
    }
  }

  async getUser(email: string): Promise<UserRecord | null> {
    const doc = await this.#users.findOne({ _id: email });
    return doc ? toUser(doc) : null;
  }

  async listUsers(afterEmail: string, limit: number): Promise<UserRecord[]> {
    const docs = await this.#users.find({ _id: { $gt: afterEmail } }).sort({ _id: 1 }).limit(limit).toArray();
    return docs.map(toUser);
  }

  async updateUser(email: string, patch: UserPatch, time: Date): Promise<UserRecord | null> {
    return this.#locks.run(`user:${email}`, async () => {
      const doc = await this.#users.findOne({ _id: email });
      if (!doc) return null;
      const next: UserRecord = { ...toUser(doc), ...patch, updated: time };
      await this.#users.replaceOne({ _id: email }, toUserDoc(next));
      return next;
    });
  }

  async countUsers(): Promise<number> {
    return this.#users.countDocuments({});
  }

  async insertToken(token: TokenRecord): Promise<void> {
    await this.#tokens.insertOne(toTokenDoc(token));
  }

  async findTokenByHash(hash: string): Promise<TokenRecord | null> {
    const doc = await this.#tokens.findOne({ hash });
    return doc ? toToken(doc) : null;
  }

  async getToken(id: string): Promise<TokenRecord | null> {
    const doc = await this.#tokens.findOne({ _id: id });
    return doc ? toToken(doc) : null;
  }

  async listTokens(subject: string | undefined): Promise<TokenRecord[]> {
    const docs = await this.#tokens
      .find(subject === undefined ? {} : { subject })
      .sort({ created: 1, id: 1 })
      .toArray();
    return docs.map(toToken);
  }

  async getTokens(ids: readonly string[]): Promise<TokenRecord[]> {
    return (await this.#tokens.find({ _id: { $in: [...ids] } }).toArray()).map(toToken);
  }

  async touchToken(id: string, time: Date): Promise<void> {
    // Under the token's lock: on FerretDB a refresh racing a revocation could write `revoked: null` back.
    await this.#locks.run(`token:${id}`, () => this.#tokens.updateOne({ _id: id }, { $set: { lastUsed: time } }));
  }

  async tokensToRecheck(ids: readonly string[], now: Date): Promise<string[]> {
    return tokensToRecheck(this.#tokens, ids, now);
  }

  async getUsers(emails: readonly string[]): Promise<UserRecord[]> {
    return (await this.#users.find({ _id: { $in: [...emails] } }).toArray()).map(toUser);
  }

  async revokeToken(id: string, time: Date): Promise<TokenRecord | null> {
    // Only a valid token gets a time, so the first revocation's time stays.
    await this.#locks.run(`token:${id}`, () => this.#tokens.updateOne({ _id: id, revoked: null }, { $set: { revoked: time } }));
    return this.getToken(id);
  }
}
