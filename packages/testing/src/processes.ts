import { spawn, type ChildProcess } from 'node:child_process';
import { freePort } from './ports.ts';
import { fileURLToPath } from 'node:url';
import { sleep } from './clients.ts';
import { TEST_JWT_SECRET, busEnv, testWorkerEnv, type ClusterServices } from './services.ts';

/** The workspace root: apps are started from here with `--import tsx`. */
export const WORKSPACE_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

export interface TestProcess {
  child: ChildProcess;
  /** Everything it printed so far (stdout and stderr), for assertions and failure messages. */
  output(): string;
  /** Resolves with the exit code or signal once it has exited. */
  exited: Promise<number | string | null>;
  /** Sends `signal` (default SIGKILL) and waits for the exit, at most `timeoutMs`. */
  kill(signal?: NodeJS.Signals, timeoutMs?: number): Promise<void>;
}

const running = new Set<TestProcess>();

/** Spawns `command args` with `env` on top of this process's environment. */
export function spawnProcess(command: string, args: string[], env: Record<string, string> = {}): TestProcess {
  const child = spawn(command, args, {
    cwd: WORKSPACE_ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const keep = (chunk: Buffer) => {
    // Bounded: a chatty process must not grow the test's memory without end.
    output = (output + chunk.toString('utf8')).slice(-200_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<number | string | null>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve(child.exitCode ?? child.signalCode);
    child.once('exit', (code, signal) => resolve(code ?? signal));
    child.once('error', () => resolve(null));
  });
  const handle: TestProcess = {
    child,
    output: () => output,
    exited,
    async kill(signal = 'SIGKILL', timeoutMs = 10_000) {
      running.delete(handle);
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      await exited;
      clearTimeout(timer);
    },
  };
  running.add(handle);
  void exited.then(() => running.delete(handle));
  return handle;
}

/** A TypeScript entry of this workspace run as its own Node process, as in production. */
export function spawnApp(entry: string, env: Record<string, string>): TestProcess {
  return spawnProcess(process.execPath, ['--import', 'tsx', entry], env);
}

/** Kills every process these helpers spawned that is still running (for afterAll). */
export async function killAllProcesses(): Promise<void> {
  await Promise.allSettled([...running].map((proc) => proc.kill('SIGKILL')));
}

/** Polls `url` until it answers 200, the process exits, or `timeoutMs` passes. */
async function waitHttpOk(proc: TestProcess, url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.child.exitCode !== null || proc.child.signalCode !== null) break;
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(1000) });
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  throw new Error(`${url} not ready within ${timeoutMs} ms:\n${proc.output().slice(-4000)}`);
}

export interface GatewayProcess extends TestProcess {
  url: string;
}

/**
 * A real gateway process (`apps/gateway/src/main.ts`) on the cluster's database, Redis and
 * prefix, on a free port of 127.0.0.1; resolves once /readyz answers. SIGKILL it to play a
 * pod that dies without cleaning up.
 */
export async function spawnGateway(
  cluster: ClusterServices,
  env: Record<string, string> = {},
): Promise<GatewayProcess> {
  const port = await freePort();
  const proc = spawnApp('apps/gateway/src/main.ts', {
    PORT: String(port),
    HOST: '127.0.0.1',
    POD_NAME: `test-gateway-process-${port}`,
    DATABASE_URL: cluster.databaseUrl,
    REDIS_URL: cluster.redisUrl,
    REDIS_PREFIX: cluster.redisPrefix,
    ...busEnv(cluster),
    JWT_SECRET: TEST_JWT_SECRET,
    AUTH_DEV_LOGIN: 'true',
    CORS_ORIGINS: 'http://allowed.example',
    DATABASE_POOL_SIZE: '4',
    DRAIN_WINDOW_MS: '0',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'warn',
    ...env,
  });
  const url = `http://127.0.0.1:${port}`;
  try {
    // tsx compiles the app at start: seconds on an idle machine, far more on a loaded CI box.
    await waitHttpOk(proc, `${url}/readyz`, 45_000);
  } catch (error) {
    await proc.kill();
    throw error;
  }
  return Object.assign(proc, { url });
}

/** A real worker process (`apps/worker/src/main.ts`) on the cluster's services and prefix. */
export function spawnWorker(
  cluster: ClusterServices,
  env: Record<string, string> = {},
): TestProcess {
  return spawnApp('apps/worker/src/main.ts', {
    ...testWorkerEnv(cluster),
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'info',
    POD_NAME: 'test-worker-process',
    ...env,
  });
}

/** Resolves once `proc` has printed `text`; throws (with its output) if it exits or 10 s pass first. */
export async function waitForOutput(proc: TestProcess, text: string, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!proc.output().includes(text)) {
    if (Date.now() > deadline || proc.child.exitCode !== null) throw new Error(`${what} did not start:\n${proc.output()}`);
    await sleep(50);
  }
}

export interface PrivateRedis {
  port: number;
  url: string;
  /** Kills the server (SIGKILL: its data is gone, as after a crash without persistence). */
  stop(): Promise<void>;
  /** Starts it again on the same port, empty. */
  start(): Promise<void>;
  /** SIGSTOP (true) or SIGCONT (false): a server that keeps its connections and answers nothing. */
  freeze(frozen: boolean): void;
}

/**
 * A redis-server of the test's own on a free port, without persistence, so a test may kill
 * and restart it; the shared Redis is never touched. Needs `redis-server` on PATH.
 */
export async function startPrivateRedis(): Promise<PrivateRedis> {
  const port = await freePort();
  let proc: TestProcess | null = null;
  const start = async () => {
    proc = spawnProcess('redis-server', [
      '--port', String(port),
      '--bind', '127.0.0.1',
      '--save', '',
      '--appendonly', 'no',
      '--daemonize', 'no',
      '--maxmemory-policy', 'noeviction',
    ]);
    await waitForOutput(proc, 'Ready to accept connections', `redis-server on ${port}`);
  };
  await start();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    async stop() {
      await proc?.kill('SIGKILL');
      proc = null;
    },
    start,
    freeze(frozen) {
      (proc as TestProcess | null)?.child.kill(frozen ? 'SIGSTOP' : 'SIGCONT');
    },
  };
}
