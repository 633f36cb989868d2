/**
 * CodeMirror 6 with the console's setup and languages: loaded on demand
 * (a chunk of its own) by code-editor.tsx, so pages without a script do
 * not fetch it.
 */
import { javascript } from '@codemirror/lang-javascript';
import { python } from '@codemirror/lang-python';
import { shell } from './shell-language.js';
import { MySQL, PostgreSQL, sql } from '@codemirror/lang-sql';
import { defaultKeymap, history, historyKeymap, indentWithTab } from '@codemirror/commands';
import { bracketMatching, defaultHighlightStyle, foldGutter, syntaxHighlighting } from '@codemirror/language';
import { highlightSelectionMatches, searchKeymap } from '@codemirror/search';
import { Compartment, EditorState, type Extension } from '@codemirror/state';
import { drawSelection, EditorView, highlightActiveLine, highlightActiveLineGutter, keymap, lineNumbers } from '@codemirror/view';

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
    // Not the legacy shell mode (@codemirror/legacy-modes 6.5.5), which froze
    // the tab on an unclosed "$(" followed by a space: see shell-language.ts.
    case 'bash':
    case 'sh':
      return shell;
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

/** What the editor component drives. */
export interface Editor {
  /** The document's text. */
  text(): string;
  /** Replaces the whole document. */
  setText(text: string): void;
  /** Highlights for another task type. */
  setType(type: string): void;
  destroy(): void;
}

interface EditorOptions {
  parent: HTMLElement;
  doc: string;
  type: string;
  editable: boolean;
  label: string;
  /** Hears every change of the document's text. */
  onText: (text: string) => void;
}

/** A CodeMirror view in `parent`. */
export function createEditor({ parent, doc, type, editable, label, onText }: EditorOptions): Editor {
  const language = new Compartment();
  const state = EditorState.create({
    doc,
    extensions: [
      setup,
      language.of(languageFor(type)),
      EditorView.lineWrapping,
      EditorState.readOnly.of(!editable),
      EditorView.editable.of(editable),
      EditorView.contentAttributes.of({ 'aria-label': label }),
      EditorView.updateListener.of((update) => {
        if (update.docChanged) onText(update.state.doc.toString());
      }),
    ],
  });
  const view = new EditorView({ state, parent });
  return {
    text: () => view.state.doc.toString(),
    setText: (text) => view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text } }),
    setType: (next) => view.dispatch({ effects: language.reconfigure(languageFor(next)) }),
    destroy: () => view.destroy(),
  };
}
