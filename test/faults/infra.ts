/**
 * The fault suite's own services: a private Postgres and Redis on free ports of 127.0.0.1,
 * started from the machine's binaries (never the shared 5432 / 6379), and the apps as real
 * processes. Everything here is bounded in time and torn down by `Infra.close()`.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, createWriteStream, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { freePort } from '@chat/testing/ports';
import { postgresBinDir } from '@chat/testing/postgres-servers';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import postgres, { type Sql } from 'postgres';
import { ensureDatabase, runMigrations } from '@chat/db';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const JWT_SECRET = 'fault-suite-secret-0123456789abcdef';
export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));


/** Polls `check` every `everyMs` until it returns true or `timeoutMs` passes; returns success. */
export async function waitFor(check: () => Promise<boolean> | boolean, timeoutMs: number, everyMs = 100): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      if (await check()) return true;
    } catch {
      // not yet
    }
    await sleep(everyMs);
  }
  return false;
}

function run(command: string, args: string[], timeoutMs = 60_000): string {
  const result = spawnSync(command, args, { encoding: 'utf8', timeout: timeoutMs });
  if (result.status !== 0) {
    throw new Error(`${command} ${args.join(' ')} failed (${result.status ?? result.signal}):\n${result.stdout}\n${result.stderr}`);
  }
  return result.stdout;
}

/** Every live process whose parent is `pid` (Postgres backends under the postmaster). */
function childPids(pid: number): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // pid (comm) state ppid …; comm may hold spaces, so split after the last ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) found.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

// ---------------------------------------------------------------------------------------------
// Postgres

export interface PrivatePostgres {
  port: number;
  url: string;
  /** A small admin pool (checker, faults); reconnects by itself after a restart. */
  admin: Sql;
  start(): Promise<void>;
  /** `pg_ctl stop -m immediate`: every process dies at once, no checkpoint (a crash). */
  stopImmediate(): Promise<void>;
  /** SIGSTOP (true) / SIGCONT (false) to the postmaster and every backend. */
  freeze(frozen: boolean): void;
  close(): Promise<void>;
}

/** Every private Postgres still running, so an interrupted run (Ctrl-C mid-boot) stops it too. */
const postgresStoppers = new Set<() => void>();

export async function startPostgres(workDir: string): Promise<PrivatePostgres> {
  const bin = postgresBinDir();
  const port = await freePort();
  const pgDir = join(workDir, 'pg');
  mkdirSync(pgDir);
  const uid = Number(run('id', ['-u', 'postgres']).trim());
  const gid = Number(run('id', ['-g', 'postgres']).trim());
  chownSync(workDir, uid, gid);
  chownSync(pgDir, uid, gid);
  const data = join(pgDir, 'data');
  const socketDir = join(pgDir, 'sock');
  // Postgres refuses to run as root: every binary runs as the postgres system user.
  const asPostgres = (args: string[], timeoutMs?: number) => run('runuser', ['-u', 'postgres', '--', ...args], timeoutMs);
  asPostgres(['mkdir', '-p', socketDir]);
  asPostgres([join(bin, 'initdb'), '-D', data, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--no-instructions'], 120_000);
  const options = [
    `-p ${port}`,
    '-c listen_addresses=127.0.0.1',
    `-c unix_socket_directories=${socketDir}`,
    '-c fsync=on',
    '-c synchronous_commit=on',
    '-c max_connections=200',
    '-c shared_buffers=64MB',
  ].join(' ');
  const start = async () => {
    asPostgres([join(bin, 'pg_ctl'), '-D', data, '-o', options, '-l', join(pgDir, 'postgres.log'), '-w', '-t', '60', 'start'], 90_000);
  };
  const immediateStop = () =>
    spawnSync('runuser', ['-u', 'postgres', '--', join(bin, 'pg_ctl'), '-D', data, '-m', 'immediate', '-w', '-t', '20', 'stop'], {
      timeout: 30_000,
    });
  postgresStoppers.add(immediateStop);
  await start();
  const url = `postgres://postgres@127.0.0.1:${port}/chat`;
  await ensureDatabase(url);
  await runMigrations(url);
  const admin = postgres(url, { max: 3, onnotice: () => {}, connect_timeout: 3, idle_timeout: 5 });
  const postmasterPid = () => Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
  const freeze = (frozen: boolean) => {
    const pid = postmasterPid();
    const all = [pid, ...childPids(pid)];
    // Stop the postmaster first (no new backends forked meanwhile); resume it last.
    if (frozen) for (const p of all) signal(p, 'SIGSTOP');
    else for (const p of all.reverse()) signal(p, 'SIGCONT');
  };
  return {
    port,
    url,
    admin,
    start,
    async stopImmediate() {
      asPostgres([join(bin, 'pg_ctl'), '-D', data, '-m', 'immediate', '-w', '-t', '30', 'stop'], 40_000);
    },
    freeze,
    async close() {
      await admin.end({ timeout: 2 }).catch(() => undefined);
      try {
        freeze(false);
      } catch {
        // not running
      }
      immediateStop();
      postgresStoppers.delete(immediateStop);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Processes (Redis, gateways, worker)

export interface Proc {
  name: string;
  child: ChildProcess;
  exited: Promise<number | string | null>;
  alive(): boolean;
  /** Last lines of its output, for failure messages. */
  tail(): string;
  kill(sig?: NodeJS.Signals, timeoutMs?: number): Promise<void>;
}

const processes = new Set<Proc>();

export function spawnProc(name: string, command: string, args: string[], env: Record<string, string>, logDir: string): Proc {
  const child = spawn(command, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const log = createWriteStream(join(logDir, `${name}.log`), { flags: 'a' });
  let recent = '';
  const keep = (chunk: Buffer) => {
    log.write(chunk);
    recent = (recent + chunk.toString('utf8')).slice(-8000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<number | string | null>((resolve) => {
    child.once('exit', (code, sig) => {
      log.end();
      resolve(code ?? sig);
    });
    child.once('error', () => resolve(null));
  });
  const proc: Proc = {
    name,
    child,
    exited,
    alive: () => child.exitCode === null && child.signalCode === null,
    tail: () => recent,
    async kill(sig = 'SIGKILL', timeoutMs = 10_000) {
      if (proc.alive()) {
        // A stopped process does not act on SIGTERM: wake it first.
        if (child.pid) signal(child.pid, 'SIGCONT');
        child.kill(sig);
      }
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      await exited;
      clearTimeout(timer);
      processes.delete(proc);
    },
  };
  processes.add(proc);
  void exited.then(() => processes.delete(proc));
  return proc;
}

export async function killAll(): Promise<void> {
  await Promise.allSettled([...processes].map((proc) => proc.kill('SIGKILL', 3000)));
  for (const stop of postgresStoppers) {
    try {
      stop();
    } catch {
      // already stopped
    }
  }
  postgresStoppers.clear();
}

export interface PrivateRedis {
  port: number;
  url: string;
  proc(): Proc | null;
  start(): Promise<void>;
  /** SIGTERM and wait: the data is gone (no persistence), as after a restart. */
  stop(): Promise<void>;
  freeze(frozen: boolean): void;
  /** CLIENT KILL TYPE pubsub: drops every subscriber connection (the adapters'). */
  killPubSubClients(): Promise<number>;
}

export async function startRedis(logDir: string): Promise<PrivateRedis> {
  const port = await freePort();
  let proc: Proc | null = null;
  const start = async () => {
    proc = spawnProc(
      `redis-${port}`,
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--maxmemory-policy', 'noeviction'],
      {},
      logDir,
    );
    const started = proc;
    const ok = await waitFor(() => started.tail().includes('Ready to accept connections'), 10_000, 50);
    if (!ok) throw new Error(`redis-server on ${port} did not start:\n${started.tail()}`);
  };
  await start();
  const url = `redis://127.0.0.1:${port}`;
  return {
    port,
    url,
    proc: () => proc,
    start,
    async stop() {
      await proc?.kill('SIGTERM', 5000);
      proc = null;
    },
    freeze(frozen) {
      const pid = proc?.child.pid;
      if (pid) signal(pid, frozen ? 'SIGSTOP' : 'SIGCONT');
    },
    async killPubSubClients() {
      const admin = new Redis(url, { maxRetriesPerRequest: 1, connectTimeout: 2000, lazyConnect: true });
      admin.on('error', () => undefined);
      try {
        await admin.connect();
        return Number(await admin.client('KILL', 'TYPE', 'pubsub'));
      } finally {
        admin.disconnect();
      }
    },
  };
}

export interface GatewayProc extends Proc {
  url: string;
  port: number;
}

export async function waitHttpOk(url: string, timeoutMs: number, proc?: Proc): Promise<boolean> {
  return waitFor(async () => {
    if (proc && !proc.alive()) throw new Error('exited');
    const response = await fetch(url, { signal: AbortSignal.timeout(1000) });
    return response.ok;
  }, timeoutMs, 100);
}

export interface Services {
  databaseUrl: string;
  redisUrl: string;
  /** `host:port,…` of the Redis Cluster carrying the Socket.IO bus (`--bus=cluster`), else null. */
  busClusterNodes: string | null;
  /** The same nodes when the state is on that cluster too (`--state=cluster`), else null. */
  stateClusterNodes: string | null;
  redisPrefix: string;
  logDir: string;
}

/** The bus and state settings every app of the suite gets: REDIS_URL's Redis unless a cluster is given. */
function redisEnv(services: Services): Record<string, string> {
  return {
    ...(services.busClusterNodes ? { REDIS_BUS_CLUSTER_NODES: services.busClusterNodes } : {}),
    ...(services.stateClusterNodes ? { REDIS_STATE_CLUSTER_NODES: services.stateClusterNodes } : {}),
  };
}

/**
 * The fault suite's gateway settings: a short statement timeout, so UNAVAILABLE comes fast; no
 * HTTP rate limit, since observers catch up over REST in bursts (hundreds of pages a minute
 * each) and the scenarios are about messages, not throttling.
 */
export const GATEWAY_ENV = {
  DATABASE_STATEMENT_TIMEOUT_MS: '2000',
  DATABASE_POOL_SIZE: '8',
  MESSAGE_RATE_LIMIT_PER_MINUTE: '100000',
  HTTP_RATE_LIMIT_PER_MINUTE: '0',
  DRAIN_WINDOW_MS: '0',
  LOG_LEVEL: 'warn',
};

export async function spawnGateway(services: Services, name: string, port: number, env: Record<string, string> = {}): Promise<GatewayProc> {
  const proc = spawnProc(name, process.execPath, ['--import', 'tsx', 'apps/gateway/src/main.ts'], {
    PORT: String(port),
    HOST: '127.0.0.1',
    POD_NAME: name,
    DATABASE_URL: services.databaseUrl,
    REDIS_URL: services.redisUrl,
    REDIS_PREFIX: services.redisPrefix,
    ...redisEnv(services),
    JWT_SECRET,
    ...GATEWAY_ENV,
    ...env,
  }, services.logDir);
  const url = `http://127.0.0.1:${port}`;
  // Generous: tsx compiles the app at start, and this box may be shared with other test runs.
  if (!(await waitHttpOk(`${url}/readyz`, 90_000, proc))) {
    const tail = proc.tail();
    await proc.kill();
    throw new Error(`${name} not ready within 90 s:\n${tail}`);
  }
  return Object.assign(proc, { url, port });
}

export async function spawnWorker(services: Services, name: string, env: Record<string, string> = {}): Promise<Proc> {
  const metricsPort = await freePort();
  const proc = spawnProc(name, process.execPath, ['--import', 'tsx', 'apps/worker/src/main.ts'], {
    DATABASE_URL: services.databaseUrl,
    REDIS_URL: services.redisUrl,
    REDIS_PREFIX: services.redisPrefix,
    ...redisEnv(services),
    SWEEP_INTERVAL_MS: '300',
    SWEEP_BATCH_SIZE: '500',
    PRESENCE_GC_INTERVAL_MS: '1000',
    ROOM_EXPIRING_NOTICE_SECONDS: '0',
    METRICS_PORT: String(metricsPort),
    METRICS_HOST: '127.0.0.1',
    LOG_LEVEL: 'info',
    POD_NAME: name,
    ...env,
  }, services.logDir);
  const started = await waitFor(() => {
    if (!proc.alive()) throw new Error('exited');
    return proc.tail().includes('worker started');
  }, 90_000, 100);
  if (!started) {
    const tail = proc.tail();
    await proc.kill();
    throw new Error(`${name} did not start within 90 s:\n${tail}`);
  }
  return proc;
}

export function makeWorkDir(): string {
  return mkdtempSync(join(tmpdir(), 'chat-faults-'));
}

export function removeWorkDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
