/**
 * `pnpm loadtest --url … --clients … --room-size … --rate … --duration …`: drives a deployed
 * chat cluster with the benchmark's lightweight Socket.IO speaker. Tokens are minted from
 * JWT_SECRET (env, with optional JWT_ISSUER / JWT_AUDIENCE) or fetched from a token endpoint
 * (POST <url>/api/auth/token, the development login). Rooms are created over REST and joined
 * with `join-room`; clients are spread over the given URLs (one per pod, or one behind a load
 * balancer), reconnect on their own and are counted. Tokens are never printed.
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { ClientGroup, type ClientSpec } from '../bench/lib/driver.ts';
import { describeError, pool, tokenSource, withTimeout } from './tokens.ts';
import { fmt, fmtInt } from '../bench/lib/stats.ts';

const LIMITS = { clients: 20_000, roomSize: 1000, rate: 50_000, duration: 3600, totalMessages: 20_000_000 };

interface Options {
  urls: string[];
  clients: number;
  roomSize: number;
  rate: number;
  duration: number;
  namespace: string;
  tokenEndpoint: string | null;
  maxOutstanding: number;
  roomTtl: number;
}

const USAGE = `usage: pnpm loadtest --url http://host:port[,http://host2:port] --clients N --room-size K --rate MSGS_PER_S --duration SECONDS
  [--token-endpoint URL]   take tokens from POST URL {nickname} (default: mint from JWT_SECRET; else <url>/api/auth/token)
  [--namespace /socket] [--max-outstanding 1000] [--room-ttl 3600]
limits: clients ≤ ${LIMITS.clients}, room-size ≤ ${LIMITS.roomSize}, rate ≤ ${LIMITS.rate}/s, duration ≤ ${LIMITS.duration} s, rate × duration ≤ ${LIMITS.totalMessages}`;

function fail(message: string): never {
  process.stderr.write(`loadtest: ${message}\n${USAGE}\n`);
  process.exit(2);
}

function parseOptions(argv: string[]): Options {
  const values = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const key = argv[i]!;
    if (key === '--') continue;
    if (key === '--help' || key === '-h') {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    }
    if (!key.startsWith('--')) fail(`unexpected argument ${key}`);
    const [name, inline] = key.slice(2).split('=', 2) as [string, string | undefined];
    const value = inline ?? argv[++i];
    if (value === undefined) fail(`--${name} needs a value`);
    values.set(name, value);
  }
  const known = new Set(['url', 'clients', 'room-size', 'rate', 'duration', 'namespace', 'token-endpoint', 'max-outstanding', 'room-ttl']);
  for (const name of values.keys()) if (!known.has(name)) fail(`unknown option --${name}`);
  const int = (name: string, min: number, max: number, fallback?: number) => {
    const raw = values.get(name);
    if (raw === undefined) {
      if (fallback === undefined) fail(`--${name} is required`);
      return fallback;
    }
    const value = Number(raw);
    if (!Number.isInteger(value) || value < min || value > max) fail(`--${name} must be an integer in [${min}, ${max}] (got ${raw})`);
    return value;
  };
  const urls = (values.get('url') ?? fail('--url is required')).split(',').map((u) => u.trim()).filter(Boolean);
  for (const url of urls) {
    try {
      const parsed = new URL(url);
      if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new Error('protocol');
    } catch {
      fail(`--url must be http(s)://host:port (got ${url})`);
    }
  }
  const clients = int('clients', 1, LIMITS.clients);
  const roomSize = int('room-size', 1, Math.min(LIMITS.roomSize, clients));
  const rate = int('rate', 0, LIMITS.rate);
  const duration = int('duration', 1, LIMITS.duration);
  if (rate * duration > LIMITS.totalMessages) fail(`rate × duration = ${rate * duration} messages exceeds ${LIMITS.totalMessages}`);
  const softLimit = openFilesLimit();
  if (softLimit !== null && clients > softLimit - 100) fail(`--clients ${clients} needs more open files than ulimit -n ${softLimit} allows`);
  return {
    urls,
    clients,
    roomSize,
    rate,
    duration,
    namespace: values.get('namespace') ?? '/socket',
    tokenEndpoint: values.get('token-endpoint') ?? null,
    maxOutstanding: int('max-outstanding', 1, 100_000, 1000),
    roomTtl: int('room-ttl', 60, 86_400, 3600),
  };
}

function openFilesLimit(): number | null {
  try {
    const match = /Max open files\s+(\d+)/.exec(readFileSync('/proc/self/limits', 'utf8'));
    return match ? Number(match[1]) : null;
  } catch {
    return null;
  }
}

async function createRoom(url: string, token: string, name: string, ttlSeconds: number): Promise<string> {
  return withTimeout(10_000, async (signal) => {
    const response = await fetch(`${url}/api/rooms`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ name, ttlSeconds }),
      signal,
    });
    if (response.status !== 201) throw new Error(`POST /api/rooms answered ${response.status}`);
    const body = (await response.json()) as { roomId?: unknown };
    if (typeof body.roomId !== 'string') throw new Error('POST /api/rooms returned no roomId');
    return body.roomId;
  });
}

async function main() {
  const options = parseOptions(process.argv.slice(2));
  const started = performance.now();
  // Hard bound on the whole run, whatever happens: setup + duration + drain.
  const hardStop = setTimeout(() => {
    process.stderr.write('\nloadtest: hard time bound reached; exiting\n');
    process.exit(3);
  }, (options.duration + 300) * 1000);
  hardStop.unref();

  const perUserPerMinute = options.rate > 0 ? (options.rate / options.clients) * 60 : 0;
  if (perUserPerMinute > 30) {
    process.stderr.write(`note: ${fmt(perUserPerMinute, 0)} sends per user per minute; the spec's limit is 30 — expect RATE_LIMITED unless the target raised MESSAGE_RATE_LIMIT_PER_MINUTE\n`);
  }

  const mint = await tokenSource({ urls: options.urls, tokenEndpoint: options.tokenEndpoint, validSeconds: options.duration + 900 });
  process.stderr.write(`tokens: ${options.clients} users…\n`);
  const tokens = await pool(options.clients, 32, (i) => mint(`load${i}`));
  const roomCount = Math.ceil(options.clients / options.roomSize);
  process.stderr.write(`rooms: creating ${roomCount}…\n`);
  const roomIds = await pool(roomCount, 16, (r) => createRoom(options.urls[r % options.urls.length]!, tokens[r * options.roomSize]!, `load ${r}`, options.roomTtl));

  // Members of a room are spread over the URLs, so with one URL per pod every room spans pods.
  const specs: ClientSpec[] = tokens.map((token, i) => ({
    url: options.urls[i % options.urls.length]!,
    auth: { token },
    roomId: roomIds[Math.floor(i / options.roomSize)]!,
  }));
  const group = new ClientGroup(specs, options.namespace, { reconnect: true });
  const opened = await group.open(100, (done) => process.stderr.write(`\rconnecting ${done}/${options.clients}`), 180_000);
  process.stderr.write(`\rconnected ${opened.connected}/${options.clients} in ${fmt(opened.ms / 1000, 1)} s${opened.failed ? `, ${opened.failed} failed (${opened.firstError})` : ''}\n`);
  if (opened.connected === 0) throw new Error('no client connected');
  const joined = await group.emitToRooms('join-room');
  process.stderr.write(`joined: ${joined.ok} ok, ${joined.failed} failed${joined.firstError ? ` (${joined.firstError})` : ''}\n`);

  group.mark();
  group.start(options.rate, options.maxOutstanding);
  const runStart = performance.now();
  const tty = process.stderr.isTTY;
  let last = { ...group.totals, t: runStart };
  await new Promise<void>((resolve) => {
    const progress = setInterval(() => {
      const now = performance.now();
      const t = group.totals;
      const dt = (now - last.t) / 1000;
      const snapshot = group.snapshot();
      const line =
        `t=${fmt((now - runStart) / 1000, 0)}s sent ${fmtInt((t.sent - last.sent) / dt)}/s acked ${fmtInt((t.acked - last.acked) / dt)}/s ` +
        `deliveries ${fmtInt((t.delivered - last.delivered) / dt)}/s p50 ${fmt(snapshot.latency.p50, 1)} ms p99 ${fmt(snapshot.latency.p99, 1)} ms ` +
        `connected ${group.size} disconnects ${t.disconnects} reconnects ${t.reconnects} errors ${t.errors}`;
      process.stderr.write(tty ? `\r${line.padEnd(150)}` : `${line}\n`);
      last = { ...t, t: now };
      if (now - runStart >= options.duration * 1000) {
        clearInterval(progress);
        resolve();
      }
    }, 1000);
  });
  const result = await group.stop(5000);
  group.close();
  if (tty) process.stderr.write('\n');

  const summary = {
    target: options.urls,
    clients: { requested: options.clients, connected: opened.connected, roomSize: options.roomSize, rooms: roomCount },
    offeredPerSec: options.rate,
    windowSeconds: Number(fmt(result.windowMs / 1000, 1)),
    sent: result.sent,
    acked: result.acked,
    ackFailed: result.ackFailed,
    skippedBackpressure: result.skipped,
    ackedPerSec: Math.round(result.ackedPerSec),
    deliveriesPerSec: Math.round(result.deliveriesPerSec),
    sendToReceiveMs: { p50: round(result.latency.p50), p95: round(result.latency.p95), p99: round(result.latency.p99), max: round(result.latency.max) },
    ackMs: { p50: round(result.ack.p50), p95: round(result.ack.p95), p99: round(result.ack.p99), max: round(result.ack.max) },
    errors: result.errors,
    disconnects: result.disconnects,
    reconnects: result.reconnects,
    totalSeconds: Number(fmt((performance.now() - started) / 1000, 1)),
  };
  process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
  process.exit(0);
}

const round = (value: number) => (Number.isFinite(value) ? Math.round(value * 100) / 100 : null);

main().catch((error: unknown) => {
  process.stderr.write(`\nloadtest failed: ${describeError(error)}\n`);
  process.exit(1);
});
