import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

/**
 * README "Other commands": `pnpm db:generate` writes a new migration from the Drizzle schema.
 * drizzle-kit diffs the schema against the newest snapshot in migrations/meta, so when the
 * migrations written by hand leave no snapshot behind, its next migration repeats theirs
 * (columns and indexes that already exist: it fails on any migrated database). With the
 * snapshot current, the unchanged schema generates nothing. Run on a copy of the folder.
 */
const root = fileURLToPath(new URL('../..', import.meta.url));
const scratch = mkdtempSync(path.join(tmpdir(), 'db-generate-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('pnpm db:generate', () => {
  it('finds no change between the Drizzle schema and the committed migrations', () => {
    const out = path.join(scratch, 'migrations');
    cpSync(path.join(root, 'packages/db/migrations'), out, { recursive: true });
    const before = readdirSync(out).sort();
    // drizzle-kit prefixes `--out` with `./`: it takes a path relative to the working directory.
    const run = spawnSync(
      path.join(root, 'node_modules/.bin/drizzle-kit'),
      ['generate', '--dialect', 'postgresql', '--schema', 'packages/db/src/schema.ts', '--out', path.relative(root, out)],
      { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
    );
    expect(run.status, run.stderr).toBe(0);
    expect(readdirSync(out).sort()).toEqual(before);
    expect(`${run.stdout}${run.stderr}`).toContain('No schema changes');
  }, 60_000);
});
