/** EventService: the audit trail, for the admin group. */
import { EventServiceService, type ListEventsRequest, type ListEventsResponse } from '../../gen/taskgate/v1/event.js';
import { InvalidArgumentError } from '../../shared/errors.js';
import type { EventPublisher } from '../audit.js';
import { eventToWire } from '../convert.js';
import type { AuditStore } from '../store/store.js';
import { pageSize, pageToken } from '../validate.js';
import type { ServiceSpec } from '../rpc/core.js';

/** The EventService implementation. */
export function eventService(store: AuditStore, publisher: EventPublisher): ServiceSpec<typeof EventServiceService> {
  async function listEvents(req: ListEventsRequest): Promise<ListEventsResponse> {
    if (req.since && req.until && req.since >= req.until) throw new InvalidArgumentError('since must be before until');
    const limit = pageSize(req.pageSize, 100);
    // What this server changed before the call is listed (other replicas'
    // events appear once their publisher has run, within its sweep).
    await publisher.flush();
    const events = await store.listEvents({
      actor: req.actor || undefined,
      resource: req.resource || undefined,
      since: req.since,
      until: req.until,
      afterId: pageToken.decode(req.pageToken) || undefined,
      limit: limit + 1,
    });
    const page = events.slice(0, limit);
    const last = page[page.length - 1];
    return { events: page.map(eventToWire), nextPageToken: events.length > limit && last ? pageToken.encode(last.id) : '' };
  }

  return { definition: EventServiceService, access: { listEvents: 'admin' }, methods: { listEvents } };
}
