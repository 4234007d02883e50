import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERRORS } from '../src/index.ts';

/**
 * docs/PROTOCOL.md is the contract a client developer reads; `ERRORS` is what the server
 * answers. Byte-exact Korean on both sides, or a client matching on the text breaks.
 */
const document = readFileSync(new URL('../../../docs/PROTOCOL.md', import.meta.url), 'utf8');
const HANGUL = /[\uac00-\ud7a3]/;

/** The rows of the §11 catalog table: `| \`CODE\` | status | \`message\` |`. */
function catalogRows(): { code: string; status: number; message: string }[] {
  const section = document.split(/^## /m).find((part) => part.startsWith('11. Error catalog'));
  if (!section) throw new Error('docs/PROTOCOL.md has no "## 11. Error catalog" section');
  const rows = [];
  for (const line of section.split('\n')) {
    const row = /^\| `([A-Z_]+)` \| (\d{3}) \| `([^`]+)` \|$/.exec(line);
    if (row) rows.push({ code: row[1]!, status: Number(row[2]), message: row[3]! });
  }
  return rows;
}

/** Every backticked string holding Hangul in any table row of the document. */
function koreanStringsInTables(): string[] {
  const found: string[] = [];
  for (const line of document.split('\n')) {
    if (!line.startsWith('|')) continue;
    for (const [, quoted] of line.matchAll(/`([^`]+)`/g)) {
      if (HANGUL.test(quoted!)) found.push(quoted!);
    }
  }
  return found;
}

describe('docs/PROTOCOL.md and the error catalog', () => {
  it('§11 lists every catalog code once, with the same status and byte-exact message', () => {
    const rows = catalogRows();
    expect(rows.map((row) => row.code)).toEqual(Object.keys(ERRORS));
    for (const row of rows) {
      expect(row, row.code).toEqual({ code: row.code, ...ERRORS[row.code as keyof typeof ERRORS] });
    }
  });

  it('every catalog message appears byte-exact in the document', () => {
    for (const [code, { message }] of Object.entries(ERRORS)) {
      expect(document.includes(`\`${message}\``), `${code}: ${message}`).toBe(true);
    }
  });

  it('every Korean string in the document tables is a catalog message', () => {
    const messages = new Set<string>(Object.values(ERRORS).map((error) => error.message));
    const strings = koreanStringsInTables();
    expect(strings.length).toBeGreaterThan(Object.keys(ERRORS).length);
    expect(strings.filter((text) => !messages.has(text))).toEqual([]);
  });
});
