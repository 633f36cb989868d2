/**
 * Highlighting for bash and sh scripts: a small tokenizer of Taskgate's
 * own (comments, quoted strings, `$` expansions, keywords, numbers,
 * operators). CodeMirror's legacy shell mode froze the tab on a half-typed
 * `$(` followed by a space; every path here consumes at least one
 * character, so a line is always tokenized to its end.
 */
import { StreamLanguage, type StringStream } from '@codemirror/language';

const KEYWORDS = new Set([
  'if', 'then', 'else', 'elif', 'fi', 'for', 'while', 'until', 'do', 'done', 'case', 'esac', 'in', 'select', 'function', 'time',
  'return', 'local', 'export', 'readonly', 'declare', 'typeset', 'unset', 'set', 'shift', 'exit', 'break', 'continue', 'trap', 'source', 'eval', 'exec',
]);

interface State {
  /** The quote a string opened on an earlier line is waiting for. */
  quote: string | null;
}

/** Consumes a quoted string up to its closing quote or the line's end; whether it closed. */
function readString(stream: StringStream, quote: string): boolean {
  while (!stream.eol()) {
    const ch = stream.next();
    if (ch === '\\' && quote === '"') stream.next();
    else if (ch === quote) return true;
  }
  return false;
}

export const shell = StreamLanguage.define<State>({
  name: 'shell',
  startState: () => ({ quote: null }),
  copyState: (state) => ({ ...state }),
  token(stream, state) {
    if (state.quote !== null) {
      if (readString(stream, state.quote)) state.quote = null;
      // An empty line inside a string: step past nothing but the line's end.
      if (stream.pos === stream.start) stream.skipToEnd();
      return 'string';
    }
    if (stream.eatSpace()) return null;
    const ch = stream.next()!;
    if (ch === '#') {
      stream.skipToEnd();
      return 'comment';
    }
    if (ch === '"' || ch === "'") {
      if (!readString(stream, ch)) state.quote = ch;
      return 'string';
    }
    if (ch === '\\') {
      stream.next();
      return null;
    }
    if (ch === '$') {
      if (stream.eat('{')) {
        stream.eatWhile(/[^}]/);
        stream.eat('}');
      } else if (!stream.eat('(')) {
        stream.eatWhile(/[\w@#?*!$-]/);
      }
      return 'variableName';
    }
    if (/[|&;<>()]/.test(ch)) {
      stream.eatWhile(/[|&;<>]/);
      return 'operator';
    }
    if (/[\w.\-/]/.test(ch)) {
      stream.eatWhile(/[\w.\-/]/);
      const word = stream.current();
      if (KEYWORDS.has(word)) return 'keyword';
      if (/^\d+$/.test(word)) return 'number';
      return null;
    }
    return null;
  },
});
