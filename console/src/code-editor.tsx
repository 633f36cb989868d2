/**
 * Scripts in CodeMirror 6, highlighted by task type (docs/target-types.md):
 * bash and sh as shell, python, postgres and mysql as their SQL dialects,
 * node as JavaScript. Read-only on the task page; an editor on New task.
 * The script is the document's text: CodeMirror never reads it as HTML.
 */
import { javascript } from '@codemirror/lang-javascript';
import { python } from '@codemirror/lang-python';
import { MySQL, PostgreSQL, sql } from '@codemirror/lang-sql';
import { StreamLanguage } from '@codemirror/language';
import { shell } from '@codemirror/legacy-modes/mode/shell';
import { Compartment, EditorState, type Extension } from '@codemirror/state';
import { basicSetup, EditorView } from 'codemirror';
import { useEffect, useRef } from 'preact/hooks';

/** The language extension for a task type; none for an unknown type. */
export function languageFor(type: string): Extension {
  switch (type) {
    case 'bash':
    case 'sh':
      return StreamLanguage.define(shell);
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
  changed.current = onChange;
  const editable = onChange !== undefined;

  useEffect(() => {
    const state = EditorState.create({
      doc: value,
      extensions: [
        basicSetup,
        language.current.of(languageFor(type)),
        EditorView.lineWrapping,
        EditorState.readOnly.of(!editable),
        EditorView.editable.of(editable),
        EditorView.contentAttributes.of({ 'aria-label': label }),
        EditorView.updateListener.of((update) => {
          if (update.docChanged) changed.current?.(update.state.doc.toString());
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
    const current = view.current;
    if (current && current.state.doc.toString() !== value) {
      current.dispatch({ changes: { from: 0, to: current.state.doc.length, insert: value } });
    }
  }, [value]);

  return <div class={editable ? 'code code-edit' : 'code'} ref={host} data-testid={editable ? 'script-editor' : 'script'} />;
}
