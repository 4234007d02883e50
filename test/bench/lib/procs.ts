import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { freePort } from '@chat/testing/ports';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export interface Proc {
  name: string;
  child: ChildProcess;
  pid: number;
  output(): string;
  exited: Promise<void>;
  stop(): Promise<void>;
}

const live = new Set<Proc>();


/** Spawns a child of this runner, keeps the tail of its output, stops it by its own pid. */
export function start(name: string, command: string, args: string[], env: Record<string, string> = {}): Proc {
  const child = spawn(command, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString('utf8')).slice(-50_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.once('error', () => resolve());
  });
  const proc: Proc = {
    name,
    child,
    pid: child.pid ?? -1,
    output: () => output,
    exited,
    async stop() {
      live.delete(proc);
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
  live.add(proc);
  return proc;
}

/**
 * A private redis-server on a free loopback port, no persistence, `noeviction` (BullMQ's
 * requirement), ready to use: its URL and the process (its pid for CPU figures).
 */
export async function startRedis(name = 'redis'): Promise<{ proc: Proc; port: number; url: string }> {
  const port = await freePort();
  const proc = start(name, 'redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--maxmemory-policy', 'noeviction']);
  await waitOutput(proc, 'Ready to accept connections', 10_000);
  return { proc, port, url: `redis://127.0.0.1:${port}` };
}

export function startNode(name: string, entry: string, env: Record<string, string>, nodeArgs: string[] = []): Proc {
  return start(name, process.execPath, [...nodeArgs, '--import', 'tsx', entry], env);
}

/**
 * A run's cleanup (what it created: processes, databases, files), done once however many ask
 * for it: on Ctrl-C or SIGTERM, then exit 130; and by the run's own `finally`, which an
 * interrupted run also reaches (its next step fails once the processes are stopped) and which
 * then waits for the cleanup under way instead of racing it to `process.exit`.
 */
export function cleanUpOnSignal(cleanup: () => Promise<void>, log: (line: string) => void): () => Promise<void> {
  let done: Promise<void> | null = null;
  const once = () => (done ??= cleanup());
  const onSignal = () => {
    if (done) return;
    log('interrupted: cleaning up');
    void once().then(() => process.exit(130));
  };
  // `on`, not `once`: a second Ctrl-C (pressed again, or relayed by tsx when the run is slow to
  // acknowledge the first) would otherwise find no listener and end the run mid-cleanup, its
  // processes and database left behind.
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return once;
}

export async function stopAll(): Promise<void> {
  await Promise.allSettled([...live].map((proc) => proc.stop()));
}

export async function waitHttpOk(proc: Proc, url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.child.exitCode !== null) break;
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(1000) });
      if (response.ok) return;
    } catch {
      // not yet
    }
    await sleep(100);
  }
  throw new Error(`${proc.name}: ${url} not ready in ${timeoutMs} ms\n${proc.output().slice(-3000)}`);
}

export async function waitOutput(proc: Proc, text: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!proc.output().includes(text)) {
    if (Date.now() > deadline || proc.child.exitCode !== null) throw new Error(`${proc.name} did not print "${text}":\n${proc.output().slice(-3000)}`);
    await sleep(50);
  }
}

export interface BenchGateway {
  proc: Proc;
  url: string;
  /** The inspector port (CPU profiles, heap figures). */
  inspect: number;
}

/**
 * One real gateway process (apps/gateway/src/main.ts) as the benchmarks run it: production
 * mode, quiet logs, send and HTTP budgets no load reaches (the history figure times pages,
 * not the limiter), no drain window, the inspector open. `bundle`: the production bundle
 * (`pnpm build`'s dist/gateway.mjs) instead of the sources through tsx.
 */
export async function startBenchGateway(
  name: string,
  env: { databaseUrl: string; redisUrl: string; redisPrefix: string; jwtSecret: string },
  nodeArgs: string[] = [],
  bundle?: string,
): Promise<BenchGateway> {
  const port = await freePort();
  const inspect = await freePort();
  const run = (entryEnv: Record<string, string>, args: string[]) =>
    bundle ? start(name, process.execPath, [...args, bundle], entryEnv) : startNode(name, 'apps/gateway/src/main.ts', entryEnv, args);
  const proc = run({
    PORT: String(port),
    HOST: '127.0.0.1',
    POD_NAME: name,
    DATABASE_URL: env.databaseUrl,
    REDIS_URL: env.redisUrl,
    REDIS_PREFIX: env.redisPrefix,
    JWT_SECRET: env.jwtSecret,
    // Raised so that the load's few hundred users can send several messages a second each;
    // BENCH_MESSAGE_RATE_LIMIT_PER_MINUTE puts a real limit back (bench:probe with enough users).
    MESSAGE_RATE_LIMIT_PER_MINUTE: process.env.BENCH_MESSAGE_RATE_LIMIT_PER_MINUTE ?? '1000000000',
    HTTP_RATE_LIMIT_PER_MINUTE: '0',
    AUTH_DEV_LOGIN: 'false',
    LOG_LEVEL: 'warn',
    DRAIN_WINDOW_MS: '0',
    NODE_ENV: 'production',
  }, [`--inspect=127.0.0.1:${inspect}`, ...nodeArgs]);
  return { proc, url: `http://127.0.0.1:${port}`, inspect };
}
