/**
 * `UserStore.tokensToRecheck` on MongoDB: which of the open streams'
 * tokens the open-stream check must read again (server/live-streams.ts).
 * The server filters by `_id` (its index) and returns only the ids of the
 * tokens that are revoked, expired or made from another token, so a check
 * where nothing changed moves ids, not documents; a second query counts
 * the tokens found, and only when some are missing are their ids read.
 * Both read fields every Taskgate has written at the top level of a token
 * (`revoked`, `expires` as a BSON date, `parent`), so tokens stored before
 * this query existed need nothing.
 */
import type { Collection } from 'mongodb';
import type { TokenDoc } from './mongo-docs.js';

/** The ids among `ids` the check must read again at `now`. */
export async function tokensToRecheck(tokens: Collection<TokenDoc>, ids: readonly string[], now: Date): Promise<string[]> {
  const unique = [...new Set(ids)];
  if (unique.length === 0) return [];
  const among = { _id: { $in: unique } };
  const [flagged, found] = await Promise.all([
    tokens
      .find(
        {
          ...among,
          $or: [
            { revoked: { $ne: null } },
            { expires: { $lte: now } },
            // An expiry that is not a BSON date (an outside writer's string)
            // cannot be compared here: read again every time, never trusted.
            { expires: { $exists: true, $ne: null, $not: { $type: 'date' } } },
            { parent: { $type: 'string' } },
          ],
        },
        { projection: { _id: 1 } },
      )
      .toArray(),
    tokens.countDocuments(among),
  ]);
  const again = flagged.map((d) => d._id);
  if (found === unique.length) return again;
  const present = new Set((await tokens.find(among, { projection: { _id: 1 } }).toArray()).map((d) => d._id));
  return [...again, ...unique.filter((id) => !present.has(id))];
}
