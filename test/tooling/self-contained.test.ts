import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/**
 * The repository stands alone: a reader (or a build) has every file it cites, and no path
 * reaches into the checkout someone happened to work in. Checks every tracked file.
 */
const root = fileURLToPath(new URL('../..', import.meta.url));
const self = path.relative(root, fileURLToPath(import.meta.url));
const tracked = execFileSync('git', ['ls-files', '-z'], { cwd: root, encoding: 'utf8' }).split('\0').filter(Boolean);

/** A tracked file's text, or null for a binary one (a NUL byte) or one deleted but not yet staged. */
function textOf(file: string): string | null {
  let text: string;
  try {
    text = readFileSync(path.join(root, file), 'utf8');
  } catch {
    return null;
  }
  return text.includes('\0') ? null : text;
}

describe('the repository is self-contained', () => {
  it('cites no file or checkout outside it', () => {
    // A sibling checkout, a working copy's absolute path, notes that were never committed, and
    // instructions given to whoever wrote the change instead of the requirement itself.
    const outside = [/\.\.\/shared\//, /\/work\//, /FIELD-NOTES/i, /\bthe brief\b/i];
    expect(tracked.length).toBeGreaterThan(100);
    const found: string[] = [];
    for (const file of tracked) {
      if (file === self) continue;
      const text = textOf(file);
      if (text === null) continue;
      text.split('\n').forEach((line, index) => {
        for (const pattern of outside) if (pattern.test(line)) found.push(`${file}:${index + 1}: ${pattern.source}`);
      });
    }
    expect(found).toEqual([]);
  });

  it('keeps packages/*/src free of imports from the apps', () => {
    // Packages are what the apps are built from; an import the other way round would make a
    // package need an app (packages/testing starts the apps as processes by path, which is no import).
    // Every file on disk, not only the tracked ones: a new file is checked before it is committed.
    const sources = readdirSync(path.join(root, 'packages')).flatMap((name) => {
      const src = path.join('packages', name, 'src');
      if (!existsSync(path.join(root, src))) return [];
      return readdirSync(path.join(root, src), { recursive: true, encoding: 'utf8' }).map((file) => path.join(src, file));
    }).filter((file) => /\.(ts|tsx|mts|cts|js|mjs|cjs)$/.test(file));
    expect(sources.length).toBeGreaterThan(20);
    const specifiers = /\b(?:import|export)\s[^'"`;]*?\bfrom\s*['"]([^'"]+)['"]|\bimport\s*['"]([^'"]+)['"]|\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)|\brequire\s*\(\s*['"]([^'"]+)['"]\s*\)/g;
    const fromApps = (specifier: string) => /^@chat\/(gateway|worker)(\/|$)/.test(specifier) || /(^|\/)apps\//.test(specifier);
    const found: string[] = [];
    for (const file of sources) {
      for (const match of (textOf(file) ?? '').matchAll(specifiers)) {
        const specifier = match.slice(1).find((group) => group !== undefined)!;
        if (fromApps(specifier)) found.push(`${file}: ${specifier}`);
      }
    }
    expect(found).toEqual([]);
  });
});
