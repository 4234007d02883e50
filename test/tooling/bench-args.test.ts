import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { argsProblem } from '../bench/lib/args.ts';
import { ROOT } from './interrupt.ts';

/**
 * README's bench commands on a fresh clone: `--help` must print how to call the bench, and a
 * mistyped option must stop it with a message, not start minutes of load with the defaults
 * (or, for bench:scale, rewrite docs/benchmarks-scale.md).
 */
const BENCHES = {
  'bench:probe': 'test/bench/probe.ts',
  'bench:batch': 'test/bench/batch-statement.ts',
  'bench:idle': 'test/bench/idle-memory.ts',
  'bench:storm': 'test/bench/handshake-storm.ts',
  'bench:purge': 'test/bench/partition-purge.ts',
  'bench:scale': 'test/bench/scale.ts',
} as const;

function run(script: string, args: string[]) {
  const result = spawnSync(process.execPath, ['--import', 'tsx', script, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 30_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('bench command lines', () => {
  for (const [command, script] of Object.entries(BENCHES)) {
    it(`${command}: --help prints the usage, a typo stops it`, () => {
      const help = run(script, ['--', '--help']);
      expect(help.status, help.stderr).toBe(0);
      expect(help.stdout).toContain(`usage: pnpm ${command}`);
      const typo = run(script, ['--sokets', '200']);
      expect(typo.status, typo.stdout).toBe(2);
      expect(typo.stderr).toContain(`${command}: unknown option --sokets`);
      expect(typo.stderr).toContain(`usage: pnpm ${command}`);
      expect(typo.stderr).not.toMatch(/\n\s+at /);
    }, 60_000);
  }

  it('checks values: present, and numbers where numbers are expected', () => {
    const spec = { values: { rows: 'number', rates: 'numbers', bundle: 'string' }, flags: ['bare'] } as const;
    expect(argsProblem(['--', '--rows', '1000', '--rates', '1000,2000', '--bare', '--bundle', 'dist/gateway.mjs'], spec)).toBeNull();
    expect(argsProblem(['--rows'], spec)).toBe('--rows needs a value');
    expect(argsProblem(['--rows', '--bare'], spec)).toBe('--rows needs a value');
    expect(argsProblem(['--rows', 'many'], spec)).toBe('--rows takes a number (got many)');
    expect(argsProblem(['--rates', '1000,,2000'], spec)).toBe('--rates takes numbers separated by commas (got 1000,,2000)');
    expect(argsProblem(['--rows=1000'], spec)).toBe('unknown option --rows=1000');
    expect(argsProblem(['rows'], spec)).toBe('unexpected argument rows');
    expect(argsProblem(['-h'], spec)).toBe('help');
  });
});
