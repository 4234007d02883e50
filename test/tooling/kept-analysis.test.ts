import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ANALYSIS_MARKER, keepAnalysis } from '../bench/lib/kept-analysis.ts';

// Every bench report (BENCHMARKS.md, docs/benchmarks-*.md) is regenerated above this marker and
// keeps the analysis written below it: a run must never lose that text.
describe('keepAnalysis', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kept-analysis-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('puts the marker under a first report', () => {
    const path = join(dir, 'first.md');
    expect(keepAnalysis(path, '# Report\n\n| a |\n')).toBe(`# Report\n\n| a |\n\n${ANALYSIS_MARKER}\n`);
  });

  it('replaces what is above the marker and keeps what is below it', () => {
    const path = join(dir, 'second.md');
    writeFileSync(path, `# Old report\n\nold figures\n\n${ANALYSIS_MARKER}\n\n## Analysis\n\nwritten by hand\n`);
    const next = keepAnalysis(path, '# New report\n\nnew figures\n');
    expect(next).toBe(`# New report\n\nnew figures\n\n${ANALYSIS_MARKER}\n\n## Analysis\n\nwritten by hand\n`);
    // Regenerating the regenerated file is stable: nothing doubles.
    writeFileSync(path, next);
    expect(keepAnalysis(path, '# New report\n\nnew figures\n')).toBe(next);
    expect(readFileSync(path, 'utf8').split(ANALYSIS_MARKER)).toHaveLength(2);
  });
});
