/**
 * Scripts in CodeMirror 6, highlighted by task type (docs/target-types.md):
 * bash and sh as plain text (see languageFor in code-mirror.ts), python,
 * postgres and mysql as their SQL dialects, node as JavaScript. Read-only
 * on the task page; an editor on New task. The script is the document's
 * text: CodeMirror never reads it as HTML. CodeMirror is loaded on demand
 * (./code-mirror.ts, a chunk of its own); until it is, the script shows as
 * plain text.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import type { Editor } from './code-mirror.js';

interface Props {
  /** The task type, for highlighting. */
  type: string;
  value: string;
  /** Absent: read-only. */
  onChange?: (value: string) => void;
  /** Names the editor for assistive technology. */
  label: string;
}

/** A CodeMirror view of a script; editable when `onChange` is given. */
export function CodeEditor({ type, value, onChange, label }: Props) {
  const host = useRef<HTMLDivElement>(null);
  const editor = useRef<Editor | null>(null);
  const [ready, setReady] = useState(false);
  const [loadError, setLoadError] = useState('');
  const changed = useRef(onChange);
  // The text this editor last reported: a render carrying it back is not an outside change.
  const emitted = useRef(value);
  // The latest props, for an editor created after the chunk arrived.
  const latest = useRef({ type, value });
  latest.current = { type, value };
  changed.current = onChange;
  const editable = onChange !== undefined;

  useEffect(() => {
    let disposed = false;
    import('./code-mirror.js')
      .then(({ createEditor }) => {
        if (disposed) return;
        emitted.current = latest.current.value;
        editor.current = createEditor({
          parent: host.current!,
          doc: latest.current.value,
          type: latest.current.type,
          editable,
          label,
          onText: (text) => {
            emitted.current = text;
            changed.current?.(text);
          },
        });
        setReady(true);
      })
      .catch((e: unknown) => {
        if (!disposed) setLoadError(e instanceof Error ? e.message : String(e));
      });
    return () => {
      disposed = true;
      editor.current?.destroy();
      editor.current = null;
      setReady(false);
    };
    // Created once; value and type changes are dispatched below.
  }, [editable, label]);

  useEffect(() => {
    editor.current?.setType(type);
  }, [type, ready]);

  useEffect(() => {
    // An editor owns its text once mounted: effects run after the browser
    // painted, when more keys may have been typed, and writing back an older
    // value undid them (and froze CodeMirror mid-update in Chromium).
    if (editable || value === emitted.current) return;
    emitted.current = value;
    const current = editor.current;
    if (current && current.text() !== value) current.setText(value);
  }, [value]);

  // CodeMirror's view lives in a child of its own, which Preact leaves empty.
  return (
    <div class={editable ? 'code code-edit' : 'code'} data-testid={editable ? 'script-editor' : 'script'}>
      {ready ? null : loadError ? (
        <p class="error" role="status">
          The editor could not be loaded ({loadError}): reload the page
        </p>
      ) : (
        <pre class="code-loading" aria-label={label}>
          {value}
        </pre>
      )}
      <div ref={host} />
    </div>
  );
}
