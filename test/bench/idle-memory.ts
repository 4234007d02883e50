/**
 * `pnpm bench:idle`: memory per idle connection on ONE process, for working on issue 17's
 * `RSS per idle connection` between full `pnpm bench` runs (its section 5 measures two gateways
 * at 10,000 sockets). A gateway with a private database and Redis (or `--bare`: plain Socket.IO,
 * test/bench/bare-server.ts), N users each with one idle authenticated socket (no room, as in
 * the bench), opened in two halves. After each half, a full GC through the inspector, then RSS
 * and V8 heap: the second half's growth is the per-connection figure, free of what the first
 * connections cost once (compiled code, pools). The bench's figure (everything from zero to N)
 * is printed too. `--snapshot`: a heap snapshot after each half, and the top per-connection
 * retainers by constructor (closures by their source line). `--bundle dist/gateway.mjs`: the
 * production bundle (`pnpm build`) instead of the sources through tsx, whose esbuild `keepNames`
 * gives every named closure a property store of its own (~0.25 KiB) that production does not have.
 *
 *   pnpm bench:idle [--sockets 5000] [--bare] [--bundle dist/gateway.mjs] [--snapshot] [--top 30]
 *
 * Everything on 127.0.0.1, bounded in count and time; takes about a minute.
 */
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import postgres from 'postgres';
import { freePort } from '@chat/testing/ports';
import { BenchDatabase } from './lib/bench-database.ts';
import { Inspector, type HeapSummary } from './lib/cdp.ts';
import { LoadgenClient, type LoadgenCommand } from './lib/loadgen-client.ts';
import { cleanUpOnSignal, sleep, startRedis, startBenchGateway, startNode, stopAll, waitHttpOk, type BenchGateway } from './lib/procs.ts';
import { fmt, rssBytes } from './lib/stats.ts';
import type { LoadgenSpec } from './loadgen.ts';
import { checkArgs } from './lib/args.ts';

const USAGE = `usage: pnpm bench:idle [--sockets 5000] [--bare] [--bundle dist/gateway.mjs] [--snapshot] [--top 30]
  (see the header of test/bench/idle-memory.ts)`;
const argv = checkArgs('bench:idle', USAGE, { values: { sockets: 'number', top: 'number', bundle: 'string' }, flags: ['bare', 'snapshot'] });
const option = (name: string, fallback: string) => {
  const at = argv.indexOf(`--${name}`);
  return at >= 0 && argv[at + 1] ? argv[at + 1]! : fallback;
};
const sockets = Math.max(200, Math.min(20_000, Number(option('sockets', '5000'))));
const half = Math.floor(sockets / 2);
const bare = argv.includes('--bare');
const snapshot = argv.includes('--snapshot');
const top = Math.max(5, Math.min(200, Number(option('top', '30'))));
const bundle = option('bundle', '');
const log = (line: string) => process.stdout.write(`[idle] ${line}\n`);

type Opened = { connected: number; failed: number; ms: number; firstError: string | null };

async function main() {
  const secret = randomBytes(24).toString('hex');
  const db = BenchDatabase.fresh('idle');
  const sql = postgres(db.url, { max: 2, onnotice: () => {} });
  const loadgen = LoadgenClient.start(secret);
  const lg = <T>(command: LoadgenCommand): Promise<T> => loadgen.request<T>(command, 180_000);
  const cleanup = cleanUpOnSignal(async () => {
    await stopAll();
    await sql.end({ timeout: 2 }).catch(() => undefined);
    await db.drop(log);
  }, log);
  try {
    await db.create();
    const redis = await startRedis();
    let target: BenchGateway;
    if (bare) {
      const port = await freePort();
      const inspect = await freePort();
      const proc = startNode('bare', 'test/bench/bare-server.ts', { PORT: String(port), NODE_ENV: 'production' }, [`--inspect=127.0.0.1:${inspect}`]);
      target = { proc, url: `http://127.0.0.1:${port}`, inspect };
      await waitHttpOk(proc, `${target.url}/healthz`, 60_000);
    } else {
      const env = { databaseUrl: db.url, redisUrl: redis.url, redisPrefix: 'idle', jwtSecret: secret };
      target = await startBenchGateway('idle-gateway', env, [], bundle ? resolve(bundle) : undefined);
      await waitHttpOk(target.proc, `${target.url}/readyz`, 120_000);
    }
    const ids = (await sql<{ id: string }[]>`insert into users (id, nickname) select gen_random_uuid(), 'idle' || g from generate_series(1, ${sockets}) g returning id`).map((r) => r.id);
    const specs = ids.map((sub): LoadgenSpec => (bare ? { url: target.url, roomId: null, bareRoom: null } : { url: target.url, roomId: null, sub }));
    const inspector = await Inspector.attach(target.inspect);

    // Warm-up: the first connections compile the handshake's code and fill pools; not counted.
    await lg({ cmd: 'open', group: 'warm', namespace: '/socket', specs: specs.slice(0, 200), concurrency: 50, deadlineMs: 30_000 });
    await lg({ cmd: 'close', group: 'warm' });
    await sleep(1500);

    const measure = async () => {
      await sleep(2000);
      const memory = await inspector.memoryAfterGc();
      return { rss: rssBytes(target.proc.pid), heap: memory.heapUsed, summary: snapshot ? await inspector.heapSummary() : null };
    };
    const m0 = await measure();
    const halves: Opened[] = [];
    const after: Awaited<ReturnType<typeof measure>>[] = [];
    for (const [index, slice] of [specs.slice(0, half), specs.slice(half, 2 * half)].entries()) {
      const opened = await lg<Opened>({ cmd: 'open', group: `idle-${index}`, namespace: '/socket', specs: slice, concurrency: 100, deadlineMs: 90_000 });
      if (opened.failed) log(`half ${index + 1}: ${opened.failed} failed (${opened.firstError})`);
      halves.push(opened);
      after.push(await measure());
    }
    const [m1, m2] = after as [typeof m0, typeof m0];
    const second = halves[1]!.connected;
    const total = halves[0]!.connected + second;
    const kib = (bytes: number) => fmt(bytes / 1024, 2);
    log(`${bare ? 'BARE' : bundle ? 'FULL (bundle)' : 'FULL'}: ${total} idle sockets on one process`);
    log(`second half (${second}): RSS ${kib((m2.rss - m1.rss) / second)} KiB/conn, heap ${kib((m2.heap - m1.heap) / second)} KiB/conn`);
    log(`from zero (as pnpm bench): RSS ${kib((m2.rss - m0.rss) / total)} KiB/conn, heap ${kib((m2.heap - m0.heap) / total)} KiB/conn`);
    if (m1.summary && m2.summary) printRetainers(m1.summary, m2.summary, second);
    await lg({ cmd: 'exit' }).catch(() => undefined);
    inspector.close();
  } finally {
    await cleanup();
  }
}

/** What the second half of the sockets added to the heap, per connection, largest first. */
function printRetainers(before: HeapSummary, after: HeapSummary, connections: number) {
  const rows = [...after].map(([key, { size, count }]) => {
    const was = before.get(key) ?? { size: 0, count: 0 };
    return { key, bytes: (size - was.size) / connections, count: (count - was.count) / connections };
  });
  rows.sort((a, b) => b.bytes - a.bytes);
  const sum = rows.reduce((s, r) => s + r.bytes, 0);
  log(`heap snapshot, self bytes per connection: ${fmt(sum, 0)} in all`);
  for (const row of rows.slice(0, top)) log(`${fmt(row.bytes, 1).padStart(8)} B  ${fmt(row.count, 2).padStart(6)}×  ${row.key}`);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    void stopAll().then(() => process.exit(1));
  },
);
