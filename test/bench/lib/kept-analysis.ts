import { readFileSync } from 'node:fs';

/** Analysis written by hand below this line in a generated report survives its regeneration. */
export const ANALYSIS_MARKER = '<!-- analysis: kept across runs -->';

/**
 * What to write at `path`: `generated` (everything above the marker), then the marker and what
 * was written by hand below it in the file there now (nothing on a first run).
 */
export function keepAnalysis(path: string, generated: string): string {
  let previous = '';
  try {
    previous = readFileSync(path, 'utf8');
  } catch {
    // A first run: no analysis yet.
  }
  const at = previous.indexOf(ANALYSIS_MARKER);
  return `${generated.trimEnd()}\n\n${at >= 0 ? previous.slice(at) : `${ANALYSIS_MARKER}\n`}`;
}
