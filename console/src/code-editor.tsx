/**
 * Scripts in CodeMirror 6, highlighted by task type (docs/target-types.md):
 * bash and sh as plain text (see languageFor), python, postgres and mysql as their SQL dialects,
 * node as JavaScript. Read-only on the task page; an editor on New task.
 * The script is the document's text: CodeMirror never reads it as HTML.
 */
import { javascript } from '@codemirror/lang-javascript';
import { python } from '@codemirror/lang-python';
import { MySQL, PostgreSQL, sql } from '@codemirror/lang-sql';
import { defaultKeymap, history, historyKeymap, indentWithTab } from '@codemirror/commands';
import { bracketMatching, defaultHighlightStyle, foldGutter, syntaxHighlighting } from '@codemirror/language';
import { highlightSelectionMatches, searchKeymap } from '@codemirror/search';
import { Compartment, EditorState, type Extension } from '@codemirror/state';
import { drawSelection, EditorView, highlightActiveLine, highlightActiveLineGutter, keymap, lineNumbers } from '@codemirror/view';
import { useEffect, useRef } from 'preact/hooks';

/**
 * CodeMirror's basic setup without autocompletion and bracket closing: word
 * completion helps little in scripts, and its open popup kept headless
 * Chromium from taking screenshots in the browser tests.
 */
const setup: Extension = [
  lineNumbers(),
  highlightActiveLineGutter(),
  foldGutter(),
  history(),
  drawSelection(),
  syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
  bracketMatching(),
  highlightActiveLine(),
  highlightSelectionMatches(),
  keymap.of([...defaultKeymap, ...historyKeymap, ...searchKeymap, indentWithTab]),
];

/** The language extension for a task type; none for an unknown type. */
export function languageFor(type: string): Extension {
  switch (type) {
    // bash and sh are shown as plain text: the legacy shell mode
    // (@codemirror/legacy-modes 6.5.5 through StreamLanguage) froze the tab
    // on an unclosed "$(" followed by a space, which any half-typed script has.
    case 'python':
      return python();
    case 'postgres':
      return sql({ dialect: PostgreSQL });
    case 'mysql':
      return sql({ dialect: MySQL });
    case 'node':
      return javascript();
    default:
      return [];
  }
}

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
  const view = useRef<EditorView | null>(null);
  const language = useRef(new Compartment());
  const changed = useRef(onChange);
  // The text this editor last reported: a render carrying it back is not an outside change.
  const emitted = useRef(value);
  changed.current = onChange;
  const editable = onChange !== undefined;

  useEffect(() => {
    const state = EditorState.create({
      doc: value,
      extensions: [
        setup,
        language.current.of(languageFor(type)),
        EditorView.lineWrapping,
        EditorState.readOnly.of(!editable),
        EditorView.editable.of(editable),
        EditorView.contentAttributes.of({ 'aria-label': label }),
        EditorView.updateListener.of((update) => {
          if (!update.docChanged) return;
          emitted.current = update.state.doc.toString();
          changed.current?.(emitted.current);
        }),
      ],
    });
    view.current = new EditorView({ state, parent: host.current! });
    return () => {
      view.current?.destroy();
      view.current = null;
    };
    // Created once; value and type changes are dispatched below.
  }, [editable, label]);

  useEffect(() => {
    view.current?.dispatch({ effects: language.current.reconfigure(languageFor(type)) });
  }, [type]);

  useEffect(() => {
    // An editor owns its text once mounted: effects run after the browser
    // painted, when more keys may have been typed, and writing back an older
    // value undid them (and froze CodeMirror mid-update in Chromium).
    if (editable || value === emitted.current) return;
    emitted.current = value;
    const current = view.current;
    if (current && current.state.doc.toString() !== value) {
      current.dispatch({ changes: { from: 0, to: current.state.doc.length, insert: value } });
    }
  }, [value]);

  return <div class={editable ? 'code code-edit' : 'code'} ref={host} data-testid={editable ? 'script-editor' : 'script'} />;
}
