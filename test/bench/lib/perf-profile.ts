import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';

/**
 * On-CPU profiles of a bench process with Linux `perf` (Debian's `linux-perf`), attributed to
 * the modules that run: what `bench:probe --perf` prints. The inspector's CPU profile samples
 * wall time, so a process that loses its core right after a write (its Postgres backend runs
 * there) shows the write as costly; `perf` samples only time on a CPU, kernel included, which
 * is what the CPU-per-delivery figures measure. The process must run with
 * `--perf-basic-prof-only-functions`, which names JIT-compiled JavaScript for `perf`.
 */

/** Whether `perf record` can sample a process here (installed, and allowed to). */
export function perfAvailable(): boolean {
  try {
    execFileSync('perf', ['--version'], { stdio: 'ignore' });
  } catch {
    return false;
  }
  const paranoid = Number(readFileSync('/proc/sys/kernel/perf_event_paranoid', 'utf8').trim());
  return process.getuid?.() === 0 || paranoid <= 1;
}

/** Samples `pid` (every thread) for `seconds` into `file`; resolves when `perf` has written it. */
export function recordPerf(pid: number, seconds: number, file: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const perf = spawn('perf', ['record', '-F', '999', '-g', '-p', String(pid), '-o', file, '--', 'sleep', String(seconds)], { stdio: 'ignore' });
    perf.once('error', reject);
    perf.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`perf record exited with ${code}`))));
  });
}

/**
 * Where a line of an esbuild bundle comes from: esbuild opens each module's code with a
 * `// path/of/the/module.ts` comment line.
 */
export function bundleModuleMap(bundle: string): (line: number) => string {
  const starts: number[] = [];
  const names: string[] = [];
  readFileSync(bundle, 'utf8')
    .split('\n')
    .forEach((text, index) => {
      if (/^\/\/ \S+\.(js|ts|mjs|cjs)$/.test(text)) {
        starts.push(index + 1);
        names.push(text.slice(3));
      }
    });
  return (line) => {
    let low = 0;
    let high = starts.length - 1;
    let found = -1;
    while (low <= high) {
      const mid = (low + high) >> 1;
      if (starts[mid]! <= line) {
        found = mid;
        low = mid + 1;
      } else high = mid - 1;
    }
    return found < 0 ? '(bundle prologue)' : names[found]!;
  };
}

/** A path as a short module name: the package inside node_modules, else the path in the repository. */
export function moduleName(path: string): string {
  const inPackage = /node_modules\/(?:\.pnpm\/[^/]+\/node_modules\/)?((?:@[^/]+\/)?[^/]+)\/(.*)$/.exec(path);
  if (inPackage) return `${inPackage[1]}/${inPackage[2]}`;
  const inRepo = /(?:^|\/)((?:apps|packages|test)\/.*)$/.exec(path);
  return inRepo ? inRepo[1]! : path;
}

interface Frame {
  symbol: string;
  dso: string;
}

/** The stacks of `perf script -F ip,sym,dso`, leaf first, one per sample. */
export function parsePerfScript(text: string): Frame[][] {
  const stacks: Frame[][] = [];
  let stack: Frame[] = [];
  for (const line of text.split('\n')) {
    const trimmed = line.trim();
    if (trimmed === '') {
      if (stack.length > 0) stacks.push(stack);
      stack = [];
      continue;
    }
    // "<ip> <symbol …> (<dso>)"
    const match = /^[0-9a-f]+ (.*?)(?: \((.*)\))?$/.exec(trimmed);
    if (match) stack.push({ symbol: match[1]!, dso: match[2] ?? '' });
  }
  if (stack.length > 0) stacks.push(stack);
  return stacks;
}

/** What a sample is counted under: the module of its frame (below), or that frame's function and module. */
export type Attribution = 'module' | 'function';

/**
 * Each sample goes to the module of the frame nearest the leaf that is JavaScript outside
 * Node's own `node:` modules (so a `JSON.stringify`, a socket write or a hash lookup counts for
 * the code that asked for it); samples with no such frame go to Node's module, or to `kernel`,
 * `garbage collector`, `JIT compiler` or `native` by their leaf. `by: 'function'` names that
 * frame's function too (`nextWrite @ postgres/src/connection.js`): which call of a module costs.
 * A function V8 inlined into its caller counts for the caller.
 */
export function attribute(stacks: Frame[][], bundleModule: ((line: number) => string) | null, by: Attribution = 'module'): Map<string, number> {
  const nameOf = (frame: Frame): string | null => {
    const js = /^JS:[*~^+]?(.*?) (\S+?):(\d+):\d+$/.exec(frame.symbol) ?? /^JS:[*~^+]?(.*?) (\S+)$/.exec(frame.symbol);
    if (!js) return null;
    const where = js[2]!.replace(/^file:\/\//, '');
    const module = where.startsWith('node:')
      ? where
      : bundleModule && /\.mjs$/.test(where) && js[3]
        ? moduleName(bundleModule(Number(js[3])))
        : moduleName(where);
    return by === 'function' ? `${js[1] || '(anonymous)'} @ ${module}` : module;
  };
  const isNodeOwn = (name: string) => (by === 'function' ? name.includes(' @ node:') : name.startsWith('node:'));
  const counts = new Map<string, number>();
  for (const stack of stacks) {
    const names = stack.map(nameOf);
    let name = names.find((found) => found !== null && !isNodeOwn(found)) ?? names.find((found) => found !== null) ?? null;
    if (name === null) {
      const symbols = stack.map((frame) => frame.symbol).join(' ');
      if (/Scavenge|MarkCompact|Heap::|Sweeper|ConcurrentMarking/.test(symbols)) name = 'garbage collector';
      else if (/compiler::|OptimizingCompileDispatcher|Maglev|Compile/.test(symbols)) name = 'JIT compiler';
      else if (stack[0]?.dso.includes('kernel')) name = 'kernel';
      else name = 'native';
    }
    counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  return counts;
}

/** `perf record`'s file as modules and their samples, most first. */
export function summarisePerf(file: string, bundle: string | null): { samples: number; byModule: [string, number][]; byFunction: [string, number][] } {
  const text = execFileSync('perf', ['script', '-i', file, '-F', 'ip,sym,dso'], { maxBuffer: 1 << 30, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  const stacks = parsePerfScript(text);
  const modules = bundle ? bundleModuleMap(bundle) : null;
  const mostFirst = (counts: Map<string, number>) => [...counts].sort((a, b) => b[1] - a[1]);
  return { samples: stacks.length, byModule: mostFirst(attribute(stacks, modules)), byFunction: mostFirst(attribute(stacks, modules, 'function')) };
}
