/**
 * A bench's command line, checked before the bench starts anything. The benches read their
 * options by looking for them (`argv.indexOf('--rows')`), so without this `--help`, a typo
 * (`--socket 200`) or another bench's option was ignored and the bench ran with its defaults:
 * minutes of load, or `bench:scale` rewriting docs/benchmarks-scale.md. Now `--help` prints the
 * usage (exit 0); anything unknown, a value missing or a number that is not one prints what is
 * wrong and the usage (exit 2). Each bench still clamps its numbers to its own bounds.
 */
export type ArgKind = 'number' | 'numbers' | 'string';

export interface ArgSpec {
  /** Options that take a value: a number, a comma-separated list of numbers, or any text. */
  values?: Record<string, ArgKind>;
  /** Options that stand alone. */
  flags?: readonly string[];
}

/** What is wrong with `argv`, `'help'` when help was asked for, or null when it is fine. */
export function argsProblem(argv: readonly string[], spec: ArgSpec): string | 'help' | null {
  const values = spec.values ?? {};
  const flags = new Set(spec.flags ?? []);
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    // pnpm passes on the `--` of `pnpm bench:x -- --rates …`.
    if (arg === '--') continue;
    if (arg === '--help' || arg === '-h') return 'help';
    if (!arg.startsWith('--')) return `unexpected argument ${arg}`;
    const name = arg.slice(2);
    if (flags.has(name)) continue;
    const kind = values[name];
    if (!kind) return `unknown option ${arg}`;
    const value = argv[i + 1];
    if (value === undefined || value.startsWith('--')) return `${arg} needs a value`;
    i++;
    const numbers = kind === 'numbers' ? value.split(',') : kind === 'number' ? [value] : [];
    if (numbers.some((part) => part.trim() === '' || !Number.isFinite(Number(part)))) {
      return `${arg} takes ${kind === 'numbers' ? 'numbers separated by commas' : 'a number'} (got ${value})`;
    }
  }
  return null;
}

/** Exits (printing the usage) on `--help` or a problem; returns the arguments otherwise. */
export function checkArgs(command: string, usage: string, spec: ArgSpec, argv: readonly string[] = process.argv.slice(2)): readonly string[] {
  const problem = argsProblem(argv, spec);
  if (problem === 'help') {
    process.stdout.write(`${usage}\n`);
    process.exit(0);
  }
  if (problem !== null) {
    process.stderr.write(`${command}: ${problem}\n${usage}\n`);
    process.exit(2);
  }
  return argv;
}
