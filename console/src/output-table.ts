/**
 * Tables in database output: psql's aligned format and the mysql client's
 * --table format, turned into rows of text cells for an HTML table. Columns
 * are cut at the positions of the border's `+` marks, so a `|` inside a
 * value does not split it. Anything else is left to the terminal.
 *
 *     psql                       mysql --table
 *      id | name                 +----+------+
 *     ----+------                | id | name |
 *       1 | ann                  +----+------+
 *     (1 row)                    |  1 | ann  |
 *                                +----+------+
 */

/** One table found in the output. */
export interface OutputTable {
  header: string[];
  rows: string[][];
}

// CSI and OSC sequences, so colored output still parses.
// eslint-disable-next-line no-control-regex
const ESCAPES = /\u001b\[[0-9;?]*[ -/]*[@-~]|\u001b\][^\u0007\u001b]*(?:\u0007|\u001b\\)/g;

function cut(line: string, bounds: number[]): string[] {
  const cells: string[] = [];
  for (let i = 0; i + 1 < bounds.length; i++) cells.push(line.slice(bounds[i]! + 1, bounds[i + 1]).trim());
  return cells;
}

function plusPositions(border: string): number[] {
  const positions: number[] = [];
  for (let i = 0; i < border.length; i++) if (border[i] === '+') positions.push(i);
  return positions;
}

const MYSQL_BORDER = /^\+(?:-+\+)+$/;
const PSQL_RULE = /^-+(?:\+-+)*$/;
const PSQL_FOOTER = /^\(\d+ rows?\)$/;

/** The tables in `text`, in order; empty when there is none. */
export function parseTables(text: string): OutputTable[] {
  const lines = text.replace(ESCAPES, '').split(/\r?\n/).map((line) => line.replace(/\r/g, ''));
  const tables: OutputTable[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (MYSQL_BORDER.test(line) && lines[i + 2] === line && lines[i + 1]?.startsWith('|')) {
      const bounds = plusPositions(line);
      const header = cut(lines[i + 1]!, bounds);
      const rows: string[][] = [];
      let j = i + 3;
      for (; j < lines.length && lines[j] !== line; j++) {
        if (!lines[j]!.startsWith('|')) break;
        rows.push(cut(lines[j]!, bounds));
      }
      if (lines[j] === line) {
        tables.push({ header, rows });
        i = j;
      }
    } else if (PSQL_RULE.test(line) && i > 0) {
      // psql's aligned rows have a space on each side of every '|': the rule's '+' marks sit on them.
      const marks = plusPositions(line);
      const headerLine = lines[i - 1]!;
      if (!marks.every((mark) => headerLine[mark] === '|')) continue;
      const bounds = [-1, ...marks, Infinity];
      const header = cut(headerLine, bounds);
      if (header.every((cell) => cell === '')) continue;
      const rows: string[][] = [];
      let j = i + 1;
      for (; j < lines.length && lines[j] !== '' && !PSQL_FOOTER.test(lines[j]!); j++) rows.push(cut(lines[j]!, bounds));
      if (j < lines.length && PSQL_FOOTER.test(lines[j]!)) {
        tables.push({ header, rows });
        i = j;
      }
    }
  }
  return tables;
}
