/**
 * A task's output in a terminal (xterm.js), followed live. Output is
 * untrusted: the terminal takes no input, follows no OSC 8 hyperlink (the
 * link handler does nothing, so no `javascript:` link and no prompt), has
 * no clipboard addon (OSC 52 is ignored) and nobody listens to title
 * changes or to the terminal's replies to queries. xterm.js is loaded on
 * demand (./xterm.ts, a chunk of its own), so pages without a terminal do
 * not fetch it.
 */
import type { FitAddon } from '@xterm/addon-fit';
import type { IBuffer, Terminal } from '@xterm/xterm';
import { useEffect, useRef, useState } from 'preact/hooks';
import type { Task } from '../../gen/es/taskgate/v1/task_pb.js';
import { formatBytes } from './format.js';
import { TerminalFeed, type FeedState } from './terminal-feed.js';

/** Lines the terminal keeps above the screen. */
export const SCROLLBACK_LINES = 10_000;
/** Past this much shown, the bar says the terminal keeps only its last lines (a line-count bound, not a byte one). */
const SCROLLBACK_BYTES_HINT = 1024 * 1024;

/** The terminal's text, wrapped lines joined: what a person sees in it. */
function bufferText(buffer: IBuffer): string {
  const lines: string[] = [];
  for (let i = 0; i < buffer.length; i++) {
    const line = buffer.getLine(i);
    if (!line) continue;
    const text = line.translateToString(true);
    if (line.isWrapped && lines.length > 0) lines[lines.length - 1] += text;
    else lines.push(text);
  }
  while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  return lines.join('\n');
}

/** The element the terminal lives in; `taskgateText()` reads its text (for tests and copy). */
export interface TerminalHost extends HTMLDivElement {
  taskgateText?: () => string;
}

interface Props {
  taskId: string;
  /** The task's output size when the page opened it. */
  outputBytes: number;
  onFinished?: (task: Task) => void;
}

/** The live terminal with its "Showing the last X of Y · Load earlier · Download raw" bar. */
export function TaskTerminal({ taskId, outputBytes, onFinished }: Props) {
  const host = useRef<TerminalHost>(null);
  const feed = useRef<TerminalFeed | null>(null);
  const [state, setState] = useState<FeedState | null>(null);
  const [loading, setLoading] = useState(false);
  const [loadError, setLoadError] = useState('');
  const finished = useRef(onFinished);
  finished.current = onFinished;

  useEffect(() => {
    const element = host.current!;
    let cleanup: (() => void) | undefined;
    let disposed = false;
    import('./xterm.js')
      .then(({ Terminal, FitAddon }) => {
        if (disposed) return;
        const term = new Terminal({
          scrollback: SCROLLBACK_LINES,
          disableStdin: true,
          cursorBlink: false,
          convertEol: false,
          fontFamily: 'ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace',
          fontSize: 13,
          linkHandler: { activate: () => undefined, allowNonHttpProtocols: false },
        });
        cleanup = start(element, term, new FitAddon());
      })
      .catch((e: unknown) => {
        if (!disposed) setLoadError(e instanceof Error ? e.message : String(e));
      });
    return () => {
      disposed = true;
      cleanup?.();
    };
    // outputBytes is read once, when the page opens the task.
  }, [taskId]);

  /** Opens `term` in `element` and feeds it; returns its cleanup. */
  function start(element: TerminalHost, term: Terminal, fit: FitAddon): () => void {
    term.loadAddon(fit);
    term.open(element);
    fit.fit();
    element.taskgateText = () => bufferText(term.buffer.active);
    const resize = new ResizeObserver(() => fit.fit());
    resize.observe(element);
    // Render the bar at most every 200 ms however fast output comes.
    let latest: FeedState | null = null;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const onChange = (next: FeedState): void => {
      latest = next;
      timer ??= setTimeout(() => {
        timer = undefined;
        setState(latest);
      }, 200);
    };
    const current = new TerminalFeed(taskId, outputBytes, term, onChange, (task) => finished.current?.(task));
    feed.current = current;
    setState(current.state);
    current.open();
    return () => {
      current.close();
      clearTimeout(timer);
      resize.disconnect();
      delete element.taskgateText;
      term.dispose();
    };
  }

  const loadEarlier = async (): Promise<void> => {
    setLoading(true);
    try {
      await feed.current?.loadEarlier();
    } finally {
      setLoading(false);
    }
  };

  const shown = state ? state.end - state.start : 0;
  const total = state ? Math.max(state.total, state.end) : outputBytes;
  return (
    <section class="terminal-section" aria-label="Output">
      <div class="terminal-bar">
        <span data-testid="terminal-range">
          {shown === total ? `Showing all ${formatBytes(total)}` : `Showing the last ${formatBytes(shown)} of ${formatBytes(total)}`}
          {shown > SCROLLBACK_BYTES_HINT ? ` (the terminal keeps the last ${SCROLLBACK_LINES.toLocaleString()} lines)` : ''}
          {state?.finished ? '' : ' · following'}
        </span>
        {feed.current?.canLoadEarlier && state && state.start > 0 ? (
          <button type="button" class="link" disabled={loading} onClick={() => void loadEarlier()}>
            Load earlier
          </button>
        ) : null}
        <a href={`/download/tasks/${encodeURIComponent(taskId)}/output`} download>
          Download raw
        </a>
        {state?.error ? <span class="error" role="status">Reconnecting: {state.error}</span> : null}
        {loadError ? <span class="error" role="status">The terminal could not be loaded ({loadError}): reload the page</span> : null}
      </div>
      <div class="terminal" ref={host} data-testid="terminal" />
      <p class="hint">The terminal holds at most 8 MiB and the last {SCROLLBACK_LINES.toLocaleString()} lines; download the raw output for all of it.</p>
    </section>
  );
}
