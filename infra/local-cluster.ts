/**
 * `pnpm start [--pods N]`: the whole cluster on this machine — migrations, N gateway pods
 * (default 2) on 127.0.0.1:3000, :3001, …, and the worker — stopped cleanly with Ctrl-C.
 * With REDIS_BUS_CLUSTER_NODES set (e.g. from `pnpm redis:cluster`) the pods' Socket.IO bus is
 * that Redis Cluster; with REDIS_STATE_CLUSTER_NODES the state (rate limits, presence, BullMQ)
 * is one too; each stays on REDIS_URL otherwise.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { connectState, redisEnvSchema, redisSettingsOf, type RedisTarget } from '@chat/bus';
import { ensureDatabase, parseDatabaseUrl, redactDatabaseUrl, runMigrations, singleConnection, withDatabaseName } from '@chat/db';
import { ConfigError, parseEnv } from '@chat/runtime';

const root = fileURLToPath(new URL('..', import.meta.url));
const databaseUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/chat';
const generatedSecret = !process.env.JWT_SECRET;
const jwtSecret = process.env.JWT_SECRET ?? randomBytes(32).toString('base64url');
// A server API key for this run (README: publishing a bot message with curl); the pods get only
// its SHA-256, as in production.
const serverApiKey = process.env.SERVER_API_KEY ?? `sk_local_${randomBytes(24).toString('hex')}`;
const host = '127.0.0.1';

const MAX_PODS = 64;
const { values: args } = parseArgs({ options: { pods: { type: 'string', default: '2' } } });
const podCount = Number(args.pods);
if (!Number.isInteger(podCount) || podCount < 1 || podCount > MAX_PODS) {
  console.error(`--pods takes a whole number from 1 to ${MAX_PODS}, not "${args.pods}"`);
  process.exit(1);
}
/** The first pod's port; the others follow it. */
const basePort = Number(process.env.GATEWAY_PORT ?? 3000);
const ports = Array.from({ length: podCount }, (_, index) => basePort + index);
/** gateway-a, gateway-b, … as in docker-compose; past z, by number. */
const podName = (index: number) => `gateway-${index < 26 ? String.fromCharCode(97 + index) : index}`;

/** The Redis variables exactly as the apps will read them; exits on a bad one. */
function readRedisEnv() {
  try {
    return parseEnv(redisEnvSchema, process.env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    console.error(error.message);
    process.exit(1);
  }
}
const redisEnv = readRedisEnv();
const redisUrl = redisEnv.REDIS_URL;
const { bus, state } = redisSettingsOf(redisEnv);
const clusterVariable = { bus: 'REDIS_BUS_CLUSTER_NODES', state: 'REDIS_STATE_CLUSTER_NODES' } as const;
const nodesOf = (target: RedisTarget) => (target.kind === 'cluster' ? target.nodes.map((node) => `${node.host}:${node.port}`).join(',') : null);

function redact(url: string): string {
  if (url.startsWith('postgres')) return redactDatabaseUrl(url);
  const parsed = new URL(url);
  if (parsed.password) parsed.password = '***';
  return parsed.toString();
}

function unreachable(what: string, url: string, error: unknown): never {
  const reason = error instanceof Error ? error.message : String(error);
  console.error(`
Cannot reach ${what} at ${redact(url)} (${reason}).
The local cluster needs PostgreSQL and Redis. Either start them with Docker —
  infra/containers/up.sh postgres redis
— or install your distribution's packages (Debian/Ubuntu: apt-get install postgresql redis-server;
macOS: brew install postgresql redis) and start them, then run \`pnpm start\` again. To use
other servers, set DATABASE_URL and REDIS_URL.`);
  process.exit(1);
}

async function checkPostgres(): Promise<void> {
  const sql = singleConnection(withDatabaseName(databaseUrl, 'postgres'), { connectTimeoutSeconds: 3 });
  try {
    await sql`select 1`;
  } catch (error) {
    unreachable('PostgreSQL', databaseUrl, error);
  } finally {
    await sql.end({ timeout: 1 }).catch(() => undefined);
  }
}

async function checkRedis(target: Extract<RedisTarget, { kind: 'standalone' }>): Promise<void> {
  const redis = connectState(target, { connectTimeout: 3000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  redis.on('error', () => undefined);
  try {
    await redis.ping();
    // BullMQ loses jobs if Redis evicts keys; the cluster's Redis must not.
    await redis.config('SET', 'maxmemory-policy', 'noeviction').catch(() => {
      console.warn('warning: could not set maxmemory-policy noeviction on Redis; set it in redis.conf');
    });
  } catch (error) {
    unreachable('Redis', target.url, error);
  } finally {
    redis.disconnect();
  }
}

/** The cluster answers and has every slot served, or the pods would start on a broken one. */
async function checkCluster(target: Extract<RedisTarget, { kind: 'cluster' }>, variable: string): Promise<void> {
  // Connected as the apps connect: REDIS_URL's credentials and TLS settings on every node.
  const cluster = connectState(target, { connectTimeout: 3000, retryStrategy: () => null });
  cluster.on('error', () => undefined);
  try {
    const info = String(await cluster.cluster('INFO'));
    if (!info.includes('cluster_state:ok')) throw new Error('cluster_state is not ok');
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    console.error(`
Cannot use the Redis Cluster at ${variable}=${process.env[variable]} (${reason}).
Start one with \`pnpm redis:cluster\` (three masters on loopback) and use the line it prints,
or unset ${variable} to use REDIS_URL.`);
    process.exit(1);
  } finally {
    cluster.disconnect();
  }
}

const children: { name: string; child: ChildProcess }[] = [];
let stopping = false;

function run(name: string, entry: string, env: Record<string, string>): void {
  const child = spawn(process.execPath, ['--import', 'tsx', entry], {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const prefix = `[${name}] `;
  const forward = (stream: NodeJS.ReadableStream, out: NodeJS.WriteStream) => {
    let buffered = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      buffered += chunk;
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) out.write(prefix + line + '\n');
    });
  };
  forward(child.stdout!, process.stdout);
  forward(child.stderr!, process.stderr);
  child.on('exit', (code, signal) => {
    if (!stopping) {
      console.error(`${prefix}exited unexpectedly (${signal ?? code}); stopping the cluster`);
      void stop(1);
    }
  });
  children.push({ name, child });
}

async function stop(code: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  console.log('\nstopping the cluster…');
  await Promise.all(
    children.map(
      ({ child }) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
          child.once('exit', () => {
            clearTimeout(timer);
            resolve();
          });
          child.kill('SIGTERM');
        }),
    ),
  );
  console.log('stopped.');
  process.exit(code);
}

async function waitReady(url: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && !stopping) {
    try {
      const response = await fetch(`${url}/readyz`);
      if (response.ok) return true;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  return false;
}

process.once('SIGINT', () => void stop(0));
process.once('SIGTERM', () => void stop(0));

await checkPostgres();
// REDIS_URL is used unless both the bus and the state are clusters.
for (const [role, target] of [['state', state], ['bus', bus]] as const) {
  if (target.kind === 'cluster') await checkCluster(target, clusterVariable[role]);
}
if (state.kind === 'standalone') await checkRedis(state);
else if (bus.kind === 'standalone') await checkRedis(bus);
await ensureDatabase(databaseUrl);
await runMigrations(databaseUrl);
console.log(`database ${parseDatabaseUrl(databaseUrl).database} migrated`);

const origins = ports.flatMap((port) => [`http://127.0.0.1:${port}`, `http://localhost:${port}`]).join(',');
const shared = {
  DATABASE_URL: databaseUrl,
  REDIS_URL: redisUrl,
  REDIS_PREFIX: redisEnv.REDIS_PREFIX,
  JWT_SECRET: jwtSecret,
  LOG_LEVEL: process.env.LOG_LEVEL ?? 'info',
};
// REDIS_BUS_CLUSTER_NODES and REDIS_STATE_CLUSTER_NODES, when set, reach every app through the
// inherited environment.
ports.forEach((port, index) =>
  run(podName(index), 'apps/gateway/src/main.ts', {
    ...shared,
    PORT: String(port),
    HOST: host,
    POD_NAME: podName(index),
    AUTH_DEV_LOGIN: 'true',
    // Locally, Ctrl-C should not wait out a production-length drain window.
    DRAIN_WINDOW_MS: process.env.DRAIN_WINDOW_MS ?? '1000',
    CORS_ORIGINS: process.env.CORS_ORIGINS ?? origins,
    SERVER_API_KEYS: process.env.SERVER_API_KEYS ?? `local:${createHash('sha256').update(serverApiKey).digest('hex')}`,
  }),
);
// The worker's /metrics on loopback too, as the gateways (its default, 0.0.0.0, is for a pod).
run('worker', 'apps/worker/src/main.ts', { ...shared, POD_NAME: 'worker', METRICS_HOST: host });

const urls = ports.map((port) => `http://${host}:${port}`);
const ready = await Promise.all(urls.map((url) => waitReady(url, 30_000)));
if (!ready.every(Boolean)) {
  console.error('the gateway pods did not become ready within 30 s; see their logs above');
  await stop(1);
}

// Secrets never go to the terminal (scroll-back, CI logs, screen shares): generated ones are
// written to a git-ignored file only its owner can read.
const generatedSecrets = [
  ...(process.env.SERVER_API_KEYS ? [] : [`SERVER_API_KEY=${serverApiKey}`]),
  ...(generatedSecret ? [`JWT_SECRET=${jwtSecret}`] : []),
];
const secretsFile = `${root}.local-cluster.env`;
if (generatedSecrets.length > 0) writeFileSync(secretsFile, `${generatedSecrets.join('\n')}\n`, { mode: 0o600 });
const secretsNote = generatedSecrets.length > 0
  ? `${secretsFile} (SERVER_API_KEY: the server API's X-Api-Key; JWT_SECRET; set them in the environment to keep your own)`
  : '(from the environment)';
console.log(`
Chat cluster is up.
  gateway pods : ${urls.join('  ')}   (Socket.IO namespace /socket, REST under /api)
  worker       : running (room expiry, presence clean-up)
  message bus  : ${nodesOf(bus) ? `Redis Cluster ${nodesOf(bus)}` : redact(redisUrl)} (sharded pub/sub)
  state        : ${nodesOf(state) ? `Redis Cluster ${nodesOf(state)}` : redact(redisUrl)} (rate limits, presence, BullMQ)
  secrets      : ${secretsNote}

Try it: paste this into a Node 20+ REPL (\`node\`) started in a folder where socket.io-client is installed:

  const { io } = require('socket.io-client');
  const base = '${urls[0]}';
  const login = await (await fetch(base + '/api/auth/token', { method: 'POST',
    headers: { 'content-type': 'application/json' }, body: JSON.stringify({ nickname: '김철수' }) })).json();
  const room = await (await fetch(base + '/api/rooms', { method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer ' + login.accessToken },
    body: JSON.stringify({ name: '첫 방' }) })).json();
  const socket = io('${urls[urls.length - 1]}/socket', { auth: { token: login.accessToken }, transports: ['websocket'] });
  socket.on('new-message', (m) => console.log('new-message', m));
  socket.on('error', (e) => console.log('error', e));
  socket.emit('join-room', { roomId: room.roomId }, (ack) => {
    socket.emit('send-message', { roomId: room.roomId, type: 'text', content: '안녕하세요!' });
  });

Ctrl-C stops everything.
`);
