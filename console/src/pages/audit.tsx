/**
 * Audit (admin group): the event trail, oldest first as ListEvents gives
 * it, with its filters (actor, resource, since, until) in the URL, a page
 * at a time.
 */
import { timestampFromDate } from '@bufbuild/protobuf/wkt';
import { useEffect, useState } from 'preact/hooks';
import type { Event } from '../../../gen/es/taskgate/v1/event_pb.js';
import { errorMessage, eventService } from '../api.js';
import { ErrorLine, TableWrap, Time } from '../components.js';
import { navigate, usePlace, withQuery } from '../router.js';

const PAGE = 100;

function resourceLink(resource: string) {
  return resource.startsWith('tasks/') ? <a href={`/${resource}`}>{resource}</a> : resource;
}

function when(local: string): ReturnType<typeof timestampFromDate> | undefined {
  if (!local) return undefined;
  const date = new Date(local);
  return Number.isNaN(date.getTime()) ? undefined : timestampFromDate(date);
}

/** The audit page. */
export function AuditPage() {
  const { query } = usePlace();
  const filter = {
    actor: query.get('actor') ?? '',
    resource: query.get('resource') ?? '',
    since: query.get('since') ?? '',
    until: query.get('until') ?? '',
  };
  const page = query.get('page') ?? '';
  const [draft, setDraft] = useState(filter);
  const [events, setEvents] = useState<Event[]>([]);
  const [next, setNext] = useState('');
  const [error, setError] = useState('');
  const key = JSON.stringify({ filter, page });

  useEffect(() => {
    setError('');
    eventService
      .listEvents({ actor: filter.actor, resource: filter.resource, since: when(filter.since), until: when(filter.until), pageSize: PAGE, pageToken: page })
      .then((response) => {
        setEvents(response.events);
        setNext(response.nextPageToken);
      })
      .catch((e: unknown) => setError(errorMessage(e)));
  }, [key]);

  const field = (name: keyof typeof draft, label: string, type: 'text' | 'datetime-local' = 'text') => (
    <label>
      {label}
      {type === 'text' ? (
        <input type="text" value={draft[name]} onInput={(event) => setDraft({ ...draft, [name]: event.currentTarget.value })} />
      ) : (
        <input type="datetime-local" value={draft[name]} onInput={(event) => setDraft({ ...draft, [name]: event.currentTarget.value })} />
      )}
    </label>
  );

  return (
    <main>
      <h1>Audit</h1>
      <form
        class="filters"
        aria-label="Filters"
        onSubmit={(event) => {
          event.preventDefault();
          navigate(withQuery('/admin/audit', draft));
        }}
      >
        {field('actor', 'Actor (user:EMAIL, agent:NAME, system)')}
        {field('resource', 'Resource (tasks/ID, targets/NAME, …)')}
        {field('since', 'Since', 'datetime-local')}
        {field('until', 'Until', 'datetime-local')}
        <button type="submit">Filter</button>
      </form>
      <ErrorLine error={error} />
      <TableWrap label="Events">
        <thead>
          <tr>
            <th scope="col">Time</th>
            <th scope="col">Actor</th>
            <th scope="col">Action</th>
            <th scope="col">Resource</th>
            <th scope="col">From → to</th>
            <th scope="col">Detail</th>
          </tr>
        </thead>
        <tbody>
          {events.map((event) => (
            <tr key={event.id}>
              <td>
                <Time time={event.time} />
              </td>
              <td>{event.actor}</td>
              <td>{event.action}</td>
              <td>{resourceLink(event.resource)}</td>
              <td>{event.from || event.to ? `${event.from} → ${event.to}` : ''}</td>
              <td class="pre">{event.detail}</td>
            </tr>
          ))}
        </tbody>
      </TableWrap>
      <nav class="pager" aria-label="Pages">
        {page ? <a href={withQuery('/admin/audit', filter)}>First page</a> : null}
        {next ? <a href={withQuery('/admin/audit', { ...filter, page: next })}>Next page</a> : null}
      </nav>
    </main>
  );
}
