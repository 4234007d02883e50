/**
 * `pnpm bench:probe`: the FULL cluster alone at a few fixed offered rates, for working on
 * the hot path between full `pnpm bench` runs. Prints, per rate, throughput, send→receive
 * and ack latency, CPU by process and the group-commit batch figures read from /metrics.
 * `--profile` writes a CPU profile of each gateway at the last rate. `--perf` samples gateway-0
 * (or the first BARE / ADAPTER process) on the CPU with Linux `perf` over the last window and
 * prints its CPU by module and by function, kernel included (test/bench/lib/perf-profile.ts): run
 * it once with and once with `--adapter` to set FULL's modules beside the cluster design's;
 * PROBE_PERF_KEEP=1 keeps the samples for `perf script` / `perf report`; PROBE_PERF_TOP=N prints N
 * rows of each list (25).
 * `--history N` then fills a room with N messages and times 1,000 sequential history pages,
 * each followed by a `/livez` on the same connection (the machine's own noise, as `pnpm
 * bench` measures it), and the bare page query; with `--profile` it also samples what each
 * page allocates. `--home-senders`: only members connected to their room's
 * "home" gateway send, so no room is written by both pods (isolates row-lock contention).
 * `--pods N` (2–4): that many gateways, each room's members spread over all of them; with
 * `--rooms 1` a hot room whose every batch takes the same row lock. Each window samples how
 * many of the database's backends wait on a lock (pg_stat_activity, every 5 ms).
 * Each window also prints how long each process waited for a CPU (run queue, per-thread
 * schedstat) and the machine's CPU pressure (/proc/pressure/cpu).
 * `--bare`: the same clients against two BARE processes instead (no database figures);
 * `--adapter`: the same two processes joined by the sharded Redis adapter (ADAPTER).
 * PROBE_WORKER_NODE_ARGS does the same for the worker (e.g. `--cpu-prof --cpu-prof-dir=/tmp/w`).
 * PROBE_NODE_ARGS passes extra node flags to the gateways (e.g. `--trace-gc`; their output is
 * then saved to $TMPDIR/probe-gateway-0.out); PROBE_STRACE=1 counts gateway-0's system calls
 * over each window; PROBE_PG_LOG=1 logs every statement's server-side duration to Postgres's log.
 * Each window prints the Redis calls per acknowledged message (INFO commandstats, commands run
 * inside scripts included) and the gateways' event-loop delay (prom-client's histogram, which
 * each scrape resets). PROBE_PG_LOG=N (N > 1) logs only statements of N ms or more. The gateways' send limit is raised to 10⁹ (the load's users send
 * several messages a second); BENCH_MESSAGE_RATE_LIMIT_PER_MINUTE=30 puts the real one back, with
 * `--rooms` large enough that each user sends under it (400 rooms at 1,500 msg/s: one send per
 * user every 2.7 s).
 *
 *   pnpm bench:probe [--fanout 10] [--rooms 60] [--rates 1000,2000] [--seconds 4] [--profile]
 *                    [--history 100000] [--home-senders] [--bare | --adapter] [--pods 4]
 *                    [--webhook] [--bundle dist/gateway.mjs] [--perf]
 *
 * Everything on 127.0.0.1, private database and Redis, bounded in count and time.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import postgres from 'postgres';
import { freePort } from '@chat/testing/ports';
import { ADMIN_URL, BenchDatabase } from './lib/bench-database.ts';
import { Inspector, summariseProfile, type CpuProfile } from './lib/cdp.ts';
import type { StepResult } from './lib/driver.ts';
import { cleanUpOnSignal, sleep, start, startRedis, startBenchGateway, startNode, stopAll, waitHttpOk, type BenchGateway } from './lib/procs.ts';
import { cpuMicros, fmt, fmtInt } from './lib/stats.ts';
import { perfAvailable, recordPerf, summarisePerf } from './lib/perf-profile.ts';
import { cpuPressureMicros, taskRunQueueMicros } from './lib/task-cpu.ts';
import type { LoadgenSpec } from './loadgen.ts';
import { LoadgenClient, type LoadgenCommand } from './lib/loadgen-client.ts';
import { checkArgs } from './lib/args.ts';

const USAGE = `usage: pnpm bench:probe [--fanout 10] [--rooms 60] [--rates 1000,2000] [--seconds 4] [--profile]
                        [--history 100000] [--home-senders] [--bare | --adapter] [--pods 4]
                        [--webhook] [--bundle dist/gateway.mjs] [--perf]
  (see the header of test/bench/probe.ts)`;
const argv = checkArgs('bench:probe', USAGE, { values: { fanout: 'number', rooms: 'number', rates: 'numbers', seconds: 'number', history: 'number', pods: 'number', bundle: 'string' }, flags: ['profile', 'perf', 'home-senders', 'bare', 'adapter', 'webhook'] });
const option = (name: string, fallback: string) => {
  const at = argv.indexOf(`--${name}`);
  return at >= 0 && argv[at + 1] ? argv[at + 1]! : fallback;
};
const fanout = Math.max(1, Math.min(50, Number(option('fanout', '10'))));
const rooms = Math.max(1, Math.min(2000, Number(option('rooms', fanout === 1 ? '300' : '60'))));
const rates = option('rates', '1000,2000').split(',').map(Number).filter((r) => r > 0 && r <= 50_000).slice(0, 10);
const windowMs = Math.max(1000, Math.min(20_000, Number(option('seconds', '4')) * 1000));
const profile = argv.includes('--profile');
const perf = argv.includes('--perf');
/** Experiment: only the members connected to their room's "home" gateway send (no cross-pod writes to a room). */
const homeSenders = argv.includes('--home-senders');
/**
 * The same clients and rates against two BARE processes (test/bench/bare-server.ts) instead;
 * `--adapter`: the same processes joined by the sharded Redis adapter (ADAPTER), each room's
 * members on both, as in `pnpm bench`.
 */
const adapterOnly = argv.includes('--adapter');
const bare = argv.includes('--bare') || adapterOnly;
const podCount = Math.max(2, Math.min(4, Number(option('pods', '2'))));
/** After the load steps: a room of this many messages, then sequential history pages timed at the client. */
const historyRows = Math.max(0, Math.min(2_000_000, Number(option('history', '0'))));
/**
 * `--webhook`: the worker delivers every room's change feed to a receiver in this process
 * (docs/webhooks.md); each window then prints the events received per second, their lag
 * (receipt − the message's createdAt) and the POSTs' size, and after the last window how long
 * the receiver took to catch up with every acknowledged message.
 */
const webhook = argv.includes('--webhook');
/**
 * `--bundle dist/gateway.mjs`: the gateways run that production bundle (`pnpm build`), as
 * `pnpm bench` and the images run them, instead of the sources through tsx (whose loader and
 * per-module code V8 compiles and optimises differently).
 */
const bundleAt = option('bundle', '');

/** CPU µs per thread name of one process (main thread, libuv pool, V8 GC helpers…). */
function threadCpu(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const name = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      const fields = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      out.set(name, (out.get(name) ?? 0) + (Number(fields[11]) + Number(fields[12])) * 10_000);
    } catch {
      // the thread ended meanwhile
    }
  }
  return out;
}

const log = (line: string) => process.stdout.write(`[probe] ${line}\n`);

/** A webhook receiver that counts what it is sent (signatures are the integration test's job). */
async function startWebhookReceiver() {
  const lastSeq = new Map<string, number>();
  let messages = 0;
  let duplicates = 0;
  let window = { posts: 0, events: 0, lags: [] as number[] };
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const now = Date.now();
      const { events } = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { events: { roomId: string; changeSeq: number; event: string; payload: { createdAt?: string } }[] };
      window.posts++;
      for (const event of events) {
        if (event.changeSeq <= (lastSeq.get(event.roomId) ?? 0)) {
          duplicates++;
          continue;
        }
        lastSeq.set(event.roomId, event.changeSeq);
        window.events++;
        if (event.event !== 'new-message') continue;
        messages++;
        if (event.payload.createdAt) window.lags.push(now - Date.parse(event.payload.createdAt));
      }
      response.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}/hook`,
    messages: () => messages,
    duplicates: () => duplicates,
    resetWindow() {
      window = { posts: 0, events: 0, lags: [] };
    },
    windowLine(seconds: number): string {
      const lags = [...window.lags].sort((a, b) => a - b);
      const q = (f: number) => (lags.length ? fmtInt(lags[Math.min(lags.length - 1, Math.floor(f * lags.length))]!) : '—');
      return `${fmtInt(window.events / seconds)} events/s in ${fmtInt(window.posts / seconds)} POSTs/s (${fmt(window.events / Math.max(1, window.posts), 1)} each); lag p50 ${q(0.5)} / p99 ${q(0.99)} / max ${q(1)} ms`;
    },
    close: () => server.close(),
  };
}

async function main() {
  const secret = randomBytes(24).toString('hex');
  const db = BenchDatabase.fresh('probe');
  const dbName = db.name;
  const sql = postgres(db.url, { max: 2, onnotice: () => {} });
  const admin = postgres(ADMIN_URL, { max: 1, onnotice: () => {} });
  const loadgen = LoadgenClient.start(secret);
  const lg = <T>(command: LoadgenCommand): Promise<T> => loadgen.request<T>(command);
  let redisAdmin: Redis | null = null;
  const cleanup = cleanUpOnSignal(async () => {
    redisAdmin?.disconnect();
    await loadgen.stop();
    await stopAll();
    await sql.end({ timeout: 2 });
    await admin.end({ timeout: 2 });
    await db.drop(log);
  }, log);

  try {
    await db.create();
    if (process.env.PROBE_PG_LOG) await admin.unsafe(`alter database ${dbName} set log_min_duration_statement = ${Number(process.env.PROBE_PG_LOG) > 1 ? Number(process.env.PROBE_PG_LOG) : 0}`);
    const { proc: redis, url: redisUrl } = await startRedis();
    redisAdmin = new Redis(redisUrl, { lazyConnect: true });
    const redisInfo = redisAdmin;
    /** Calls per Redis command so far (INFO commandstats; commands run inside scripts included). */
    const redisCalls = async (): Promise<Map<string, number>> => {
      const info = await redisInfo.info('commandstats');
      return new Map([...info.matchAll(/cmdstat_([a-z|_-]+):calls=(\d+)/g)].map((m) => [m[1]!, Number(m[2])] as const));
    };
    const gateways: BenchGateway[] = [];
    if (perf && !perfAvailable()) throw new Error('--perf: `perf record` is not installed or not allowed here (apt-get install linux-perf; root or perf_event_paranoid ≤ 1)');
    const extraNodeArgs = [...(process.env.PROBE_NODE_ARGS ?? '').split(' ').filter(Boolean), ...(perf ? ['--perf-basic-prof-only-functions'] : [])];
    for (let i = 0; i < podCount && !bare; i++) {
      gateways.push(await startBenchGateway(`probe-gateway-${i}`, { databaseUrl: db.url, redisUrl, redisPrefix: 'probe', jwtSecret: secret }, extraNodeArgs, bundleAt ? resolve(bundleAt) : undefined));
    }
    const receiver = webhook ? await startWebhookReceiver() : null;
    const worker = startNode('worker', 'apps/worker/src/main.ts', {
      ...(receiver ? { WEBHOOK_ENDPOINTS: JSON.stringify([{ id: 'probe', url: receiver.url, secret: 'probe-webhook-secret-0123456789' }]) } : {}),
      DATABASE_URL: db.url,
      REDIS_URL: redisUrl,
      REDIS_PREFIX: 'probe',
      METRICS_PORT: '0',
      METRICS_HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      NODE_ENV: 'production',
    }, (process.env.PROBE_WORKER_NODE_ARGS ?? '').split(' ').filter(Boolean));
    for (let i = 0; i < 2 && bare; i++) {
      const port = await freePort();
      const inspect = await freePort();
      const proc = startNode(`bare-${i}`, 'test/bench/bare-server.ts', { PORT: String(port), NODE_ENV: 'production', ...(adapterOnly ? { REDIS_URL: redisUrl } : {}) }, [`--inspect=127.0.0.1:${inspect}`, ...extraNodeArgs]);
      await waitHttpOk(proc, `http://127.0.0.1:${port}/healthz`, 60_000);
      gateways.push({ proc, url: `http://127.0.0.1:${port}`, inspect });
    }
    await Promise.all(gateways.map((g) => waitHttpOk(g.proc, `${g.url}/${bare ? 'healthz' : 'readyz'}`, 120_000)));

    const owner = randomUUID();
    const users = Array.from({ length: rooms * fanout }, () => randomUUID());
    const roomIds = Array.from({ length: rooms }, () => randomUUID());
    await sql`insert into users (id, nickname) select id, 'probe' from jsonb_to_recordset(${JSON.stringify([owner, ...users].map((id) => ({ id })))}::text::jsonb) as x(id uuid)`;
    await sql`insert into rooms (id, name, created_by, member_count, created_at, expires_at)
      select id, 'probe', ${owner}, ${fanout}, now(), now() + interval '1 day'
      from jsonb_to_recordset(${JSON.stringify(roomIds.map((id) => ({ id })))}::text::jsonb) as x(id uuid)`;
    await sql`insert into room_members (room_id, user_id)
      select room_id, user_id from jsonb_to_recordset(${JSON.stringify(users.map((user_id, i) => ({ room_id: roomIds[Math.floor(i / fanout)], user_id })))}::text::jsonb) as x(room_id uuid, user_id uuid)`;
    // Statistics, as autovacuum gives a table in service: without them the handshakes' lookups
    // are planned as scans of the fresh tables.
    await sql`analyze users, rooms, room_members`;
    const specs: LoadgenSpec[] = users.map((sub, i) => {
      const room = Math.floor(i / fanout);
      const sends = !homeSenders || i % 2 === room % 2;
      if (bare) return { url: gateways[(adapterOnly ? i : room) % 2]!.url, roomId: `bare-${room}`, bareRoom: `bare-${room}` };
      return { url: gateways[i % gateways.length]!.url, roomId: sends ? roomIds[room]! : null, sub };
    });
    const opened = await lg<{ connected: number; failed: number; firstError: string | null }>({ cmd: 'open', group: 'g', namespace: '/socket', specs, concurrency: 50 });
    log(`fan-out ${fanout}: ${rooms} rooms, ${opened.connected} clients (${opened.failed} failed${opened.firstError ? `, first: ${opened.firstError}` : ''}), rooms span all ${gateways.length} gateways`);

    const pgPids = async () =>
      (await admin<{ pid: number }[]>`select pid from pg_stat_activity where datname = ${dbName} or backend_type = 'walwriter'`).map((r) => r.pid);
    const metric = async (name: string) => {
      let total = 0;
      if (bare) return 0;
      for (const g of gateways) {
        const text = await (await fetch(`${g.url}/metrics`)).text();
        const match = new RegExp(`^${name} (\\S+)`, 'm').exec(text);
        total += match ? Number(match[1]) : 0;
      }
      return total;
    };
    const dbFigures = async () => {
      const [row] = await admin<{ xact: string; returned: string; fetched: string; inserted: string; updated: string }[]>`
        select xact_commit::text as xact, tup_returned::text as returned, tup_fetched::text as fetched,
               tup_inserted::text as inserted, tup_updated::text as updated
        from pg_stat_database where datname = ${dbName}`;
      return { xact: Number(row?.xact), returned: Number(row?.returned), fetched: Number(row?.fetched), inserted: Number(row?.inserted), updated: Number(row?.updated) };
    };
    const batchFigures = async () => ({
      count: await metric('chat_persist_duration_seconds_count'),
      seconds: await metric('chat_persist_duration_seconds_sum'),
      messages: await metric('chat_persist_batch_size_sum'),
      acks: await metric('chat_ack_duration_seconds_count{event="send-message"}'),
      slowBatches: (await metric('chat_persist_duration_seconds_count')) - (await metric('chat_persist_duration_seconds_bucket{le="0.025"}')),
      ackSeconds: await metric('chat_ack_duration_seconds_sum{event="send-message"}'),
    });

    /** Write system calls made by every gateway so far (`syscw` of /proc/<pid>/io). */
    const gatewayWrites = () =>
      gateways.reduce((sum, g) => sum + Number(/syscw: (\d+)/.exec(readFileSync(`/proc/${g.proc.pid}/io`, 'utf8'))?.[1] ?? 0), 0);
    if (receiver) {
      // The delivery cursors' table starts empty: give it the statistics autovacuum would
      // within a minute of service, or its lookups are planned (and cached) as scans.
      await lg({ cmd: 'start', group: 'g', rate: rates[0]!, maxOutstanding: 300 });
      await sleep(4000);
      await sql`analyze webhook_cursors, rooms, room_events`;
      await lg({ cmd: 'stop', group: 'g' });
      await sleep(1500);
    }
    for (const [index, rate] of rates.entries()) {
      const last = index === rates.length - 1;
      await lg({ cmd: 'start', group: 'g', rate, maxOutstanding: 300 });
      await sleep(800);
      const pg = await pgPids();
      const pgNames = new Map((await admin<{ pid: number; name: string }[]>`
        select pid, coalesce(nullif(application_name, ''), backend_type) as name from pg_stat_activity
        where datname = ${dbName} or backend_type in ('walwriter', 'checkpointer', 'background writer', 'autovacuum launcher')`).map((r) => [r.pid, r.name] as const));
      const pgCpu0 = new Map([...pgNames.keys()].map((pid) => [pid, cpuMicros(pid)] as const));
      const roles = { gw0: [gateways[0]!.proc.pid], gwOthers: gateways.slice(1).map((g) => g.proc.pid), worker: [worker.pid], redis: [redis.pid], pg, loadgen: [loadgen.pid] };
      const cpu = () => Object.fromEntries(Object.entries(roles).map(([role, pids]) => [role, pids.reduce((s, p) => s + cpuMicros(p), 0)]));
      const runQueue = () => Object.fromEntries(Object.entries(roles).map(([role, pids]) => [role, pids.reduce((s, p) => s + taskRunQueueMicros(p), 0)]));
      const inspectors = last && profile ? await Promise.all(gateways.map((g) => Inspector.attach(g.inspect))) : [];
      for (const inspector of inspectors) {
        await inspector.send('Profiler.enable');
        await inspector.send('Profiler.setSamplingInterval', { interval: 200 });
        await inspector.send('Profiler.start');
      }
      const b0 = await batchFigures();
      const d0 = await dbFigures();
      const c0 = cpu();
      const q0 = runQueue();
      const pressure0 = cpuPressureMicros();
      const th0 = threadCpu(gateways[0]!.proc.pid);
      const w0 = gatewayWrites();
      const r0 = await redisCalls();
      receiver?.resetWindow();
      const t0 = performance.now();
      await lg({ cmd: 'mark', group: 'g' });
      const strace = process.env.PROBE_STRACE ? start('strace', 'strace', ['-c', '-f', '-p', String(gateways[0]!.proc.pid)]) : null;
      const perfFile = join(tmpdir(), `probe-perf-${Date.now()}.data`);
      const perfSeconds = Math.max(1, Math.floor(windowMs / 1000) - 1);
      const perfRecorded = last && perf ? recordPerf(gateways[0]!.proc.pid, perfSeconds, perfFile) : null;
      const lockSamples = { n: 0, waiting: 0, any: 0 };
      const sampleUntil = performance.now() + windowMs;
      while (performance.now() < sampleUntil && !bare) {
        const [row] = await admin<{ n: number }[]>`
          select count(*)::int as n from pg_stat_activity where datname = ${dbName} and wait_event_type = 'Lock'`;
        lockSamples.n++;
        lockSamples.waiting += row?.n ?? 0;
        if (row?.n) lockSamples.any++;
        await sleep(5);
      }
      if (bare) await sleep(windowMs);
      if (strace) {
        strace.child.kill('SIGINT');
        await strace.exited;
        log(`strace of ${gateways[0]!.proc.name} over the window:\n${strace.output().split('\n').filter((line) => /^ *[0-9.]+ +[0-9.]+ +[0-9]+ +[0-9]+/.test(line)).slice(0, 25).join('\n')}`);
      }
      const result = await lg<StepResult>({ cmd: 'stop', group: 'g' });
      const seconds = (performance.now() - t0) / 1000;
      const c1 = cpu();
      const q1 = runQueue();
      const pressure1 = cpuPressureMicros();
      const th1 = threadCpu(gateways[0]!.proc.pid);
      const w1 = gatewayWrites();
      // First scrape since the window began: prom-client resets its event-loop delay histogram
      // at every scrape, so this is the window's.
      const loopLag = bare ? [] : await Promise.all(gateways.map(async (g) => {
        const text = await (await fetch(`${g.url}/metrics`)).text();
        const read = (name: string) => Number(new RegExp(`^${name} (\\S+)`, 'm').exec(text)?.[1] ?? NaN) * 1000;
        return { p50: read('nodejs_eventloop_lag_p50_seconds'), p99: read('nodejs_eventloop_lag_p99_seconds'), max: read('nodejs_eventloop_lag_max_seconds') };
      }));
      const r1 = await redisCalls();
      const b1 = await batchFigures();
      const d1 = await dbFigures();
      const perMessage = (key: keyof typeof d0) => fmt((d1[key] - d0[key]) / Math.max(1, result.acked), 2);
      const batches = b1.count - b0.count;
      const cpuLine = Object.keys(roles).map((role) => `${role} ${fmt((c1[role]! - c0[role]!) / seconds / 1e4, 0)}%`).join(' ');
      const gwMicros = (c1.gw0! - c0.gw0! + c1.gwOthers! - c0.gwOthers!) / Math.max(1, result.delivered);
      log(
        `offered ${fmtInt(rate)}/s: acked ${fmtInt(result.ackedPerSec)}/s, deliveries ${fmtInt(result.deliveriesPerSec)}/s, ` +
          `p50/p99 ${fmt(result.latency.p50, 2)}/${fmt(result.latency.p99, 1)} ms, ack p50/p99 ${fmt(result.ack.p50, 2)}/${fmt(result.ack.p99, 1)} ms, ` +
          `gateway µs/delivery ${fmt(gwMicros, 1)}; batches ${fmt(batches / seconds, 0)}/s × ${fmt((b1.messages - b0.messages) / Math.max(1, batches), 1)} msgs, ` +
          `${fmt(((b1.seconds - b0.seconds) / Math.max(1, batches)) * 1000, 2)} ms each; ` +
          `over 25 ms ${fmtInt(b1.slowBatches - b0.slowBatches)}; server-side ack mean ${fmt(((b1.ackSeconds - b0.ackSeconds) / Math.max(1, b1.acks - b0.acks)) * 1000, 2)} ms; cpu ${cpuLine}; ` +
          `per message: xact ${perMessage('xact')}, tuples returned ${perMessage('returned')} fetched ${perMessage('fetched')} inserted ${perMessage('inserted')} updated ${perMessage('updated')}` +
          (result.ackFailed ? `; ack failures ${result.ackFailed} ${JSON.stringify(result.errors)}` : ''),
      );
      const pgByName = new Map<string, number>();
      for (const [pid, before] of pgCpu0) pgByName.set(pgNames.get(pid)!, (pgByName.get(pgNames.get(pid)!) ?? 0) + (cpuMicros(pid) - before) / seconds / 1e4);
      if (!bare) log(`  lock waits: in ${fmt((100 * lockSamples.any) / Math.max(1, lockSamples.n), 0)}% of ${lockSamples.n} samples a backend waited on a lock; ${fmt(lockSamples.waiting / Math.max(1, lockSamples.n), 2)} waiting on average`);
      log(`  postgres by process: ${[...pgByName].filter(([, pct]) => pct >= 0.5).map(([name, pct]) => `${name} ${fmt(pct, 1)}%`).join(', ')}`);
      log(
        `  waiting for a CPU (run queue), ms per s: ${Object.keys(roles).map((role) => `${role} ${fmt((q1[role]! - q0[role]!) / seconds / 1000, 0)}`).join(' ')}; ` +
          `CPU pressure (some task waiting) ${fmt((100 * (pressure1 - pressure0)) / (seconds * 1e6), 0)}% of the window`,
      );
      const redisPerMessage = [...r1]
        .map(([name, calls]) => [name, (calls - (r0.get(name) ?? 0)) / Math.max(1, result.acked)] as const)
        .filter(([name, perMessage]) => perMessage >= 0.005 && name !== 'info')
        .sort((a, b) => b[1] - a[1]);
      log(`  Redis calls per acknowledged message: ${redisPerMessage.map(([name, perMessage]) => `${name} ${fmt(perMessage, 3)}`).join(', ')}`);
      if (loopLag.length > 0) log(`  gateways' event-loop timer intervals over the window (prom-client's 10 ms timer: 10 ms is no delay), p50 / p99 / max: ${loopLag.map((lag) => `${fmt(lag.p50, 1)} / ${fmt(lag.p99, 1)} / ${fmt(lag.max, 1)} ms`).join('; ')}`);
      if (receiver) log(`  webhooks: ${receiver.windowLine(seconds)}`);
      log(`  gateways' write system calls (write, writev, sendmsg…) per delivery: ${fmt((w1 - w0) / Math.max(1, result.delivered), 3)}`);
      log(`  gateway-0 threads: ${[...th1].map(([name, us]) => [name, (us - (th0.get(name) ?? 0)) / seconds / 1e4] as const).filter(([, pct]) => pct >= 0.5).map(([name, pct]) => `${name} ${fmt(pct, 0)}%`).join(', ')}`);
      if (perfRecorded) {
        await perfRecorded;
        const { samples, byModule, byFunction } = summarisePerf(perfFile, bundleAt ? resolve(bundleAt) : null);
        if (process.env.PROBE_PERF_KEEP) log(`perf data kept in ${perfFile} (perf script -i ${perfFile})`);
        else rmSync(perfFile, { force: true });
        log(`${bare ? gateways[0]!.proc.name : 'gateway-0'} on the CPU (perf, ${perfSeconds} s, ${fmtInt(samples)} samples at 999 Hz: ${fmt(samples / perfSeconds / 10, 0)}% of a core), by module (the JavaScript frame nearest the leaf):`);
        const perfTop = Math.max(1, Math.min(500, Number(process.env.PROBE_PERF_TOP ?? 25)));
        const share = ([name, count]: [string, number]) => log(`  ${fmt((100 * count) / samples, 1).padStart(5)}%  ${fmt(count / perfSeconds, 0).padStart(4)} ms/s  ${name}`);
        byModule.slice(0, perfTop).forEach(share);
        log('  … and by function (the same frame):');
        byFunction.slice(0, perfTop).forEach(share);
      }
      for (const [i, inspector] of inspectors.entries()) {
        const { profile: raw } = await inspector.send<{ profile: CpuProfile }>('Profiler.stop');
        inspector.close();
        const file = join(tmpdir(), `probe-gateway-${i}-${Date.now()}.cpuprofile`);
        writeFileSync(file, JSON.stringify(raw));
        const summary = summariseProfile(raw, 25);
        log(`gateway-${i} profile → ${file}`);
        for (const entry of summary.byArea) log(`  ${entry.area.padEnd(28)} ${fmt(entry.selfPct, 1)}%`);
        for (const entry of summary.top) log(`  ${fmt(entry.selfPct, 1).padStart(5)}% ${entry.name} ${entry.where}`);
      }
      await sleep(400);
    }
    if (receiver) {
      // Every acknowledged message is one new-message event; the load has stopped.
      const acked = await metric('chat_ack_duration_seconds_count{event="send-message"}');
      const begun = performance.now();
      while (receiver.messages() < acked && performance.now() - begun < 120_000) await sleep(100);
      log(`webhooks: ${fmtInt(receiver.messages())} of ${fmtInt(acked)} acknowledged messages received, caught up ${fmt((performance.now() - begun) / 1000, 1)} s after the load stopped; ${fmtInt(receiver.duplicates())} duplicates`);
      receiver.close();
    }
    if (historyRows > 0) {
      const room = roomIds[0]!;
      await sql`insert into messages (id, room_id, user_id, type, content, seq, created_at, expires_at)
        select gen_random_uuid(), ${room}, ${users[0]!}, 'text', 'history message ' || g, g + 1000000,
               now() - (${historyRows} - g) * interval '1 millisecond', (select expires_at from rooms where id = ${room})
        from generate_series(1, ${historyRows}) g`;
      // VACUUM too, as autovacuum would have long since done on a day's table: otherwise it starts
      // on the million fresh rows in the middle of the timed pages (and their first reads set
      // hint bits), which a table in service does not see.
      await sql`vacuum analyze messages`;
      const [mid] = await sql<{ id: string }[]>`select id from messages where room_id = ${room} and seq = ${1_000_000 + Math.floor(historyRows / 2)}`;
      {
        const times: number[] = [];
        for (let i = 0; i < 1030; i++) {
          const t = performance.now();
          await sql`select m.id, m.room_id, m.seq, m.user_id, u.nickname, m.type, m.content, m.image_url, m.created_at
            from messages m join users u on u.id = m.user_id
            where m.room_id = ${room} and m.is_deleted = false order by m.seq desc limit 51`;
          if (i >= 30) times.push(performance.now() - t);
        }
        times.sort((a, b) => a - b);
        log(`direct page query: p50 ${fmt(times[500]!, 2)} p90 ${fmt(times[900]!, 2)} p99 ${fmt(times[990]!, 2)} max ${fmt(times[999]!, 2)} ms`);
      }
      const historyInspector = profile ? await Inspector.attach(gateways[0]!.inspect) : null;
      if (historyInspector) {
        await historyInspector.send('Profiler.enable');
        await historyInspector.send('Profiler.setSamplingInterval', { interval: 100 });
        await historyInspector.send('Profiler.start');
        await historyInspector.send('HeapProfiler.enable');
        await historyInspector.send('HeapProfiler.startSampling', { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
      }
      // Each page is followed by a `/livez` on the same keep-alive connection, as in `pnpm bench`:
      // the floor is measured under the same noise, and the figure is the ratio of the p99s.
      const timed = async (path: string) => {
        const t = performance.now();
        // fetch keeps the connection alive, as the benchmark's history client does
        const response = await fetch(`${gateways[0]!.url}${path}`);
        await response.arrayBuffer();
        if (response.status !== 200) throw new Error(`GET ${path}: HTTP ${response.status}`);
        return performance.now() - t;
      };
      for (const path of [`/api/rooms/${room}/messages?limit=50`, `/api/rooms/${room}/messages?limit=50&before=${mid!.id}`]) {
        const times: { ms: number; at: number }[] = [];
        const livez: number[] = [];
        const faults = () => Number(readFileSync(`/proc/${gateways[0]!.proc.pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[7]);
        const faults0 = faults();
        const begun = performance.now();
        for (let i = 0; i < 1030; i++) {
          const at = performance.now() - begun;
          const page = await timed(path);
          const floor = await timed('/livez');
          if (i >= 30) {
            times.push({ ms: page, at });
            livez.push(floor);
          }
        }
        const sorted = [...times].sort((a, b) => a.ms - b.ms);
        const floors = [...livez].sort((a, b) => a - b);
        const at = (f: number) => Math.min(sorted.length - 1, Math.floor(f * sorted.length));
        const q = (f: number) => fmt(sorted[at(f)]!.ms, 2);
        log(`  gateway-0 minor page faults during the loop: ${fmtInt(faults() - faults0)}`);
        log(`history ${path} of ${fmtInt(historyRows)}: p50 ${q(0.5)} p90 ${q(0.9)} p99 ${q(0.99)} max ${q(1)} ms; slowest at ${sorted.slice(-8).map((x) => `${fmt(x.at / 1000, 2)}s:${fmt(x.ms, 1)}`).join(' ')}`);
        log(`  /livez in the same loop: p50 ${fmt(floors[at(0.5)]!, 2)} p99 ${fmt(floors[at(0.99)]!, 2)} ms; page p99 ÷ /livez p99 ${fmt(sorted[at(0.99)]!.ms / floors[at(0.99)]!, 2)}`);
      }
      if (historyInspector) {
        const { profile: raw } = await historyInspector.send<{ profile: CpuProfile }>('Profiler.stop');
        const mem0 = await historyInspector.memoryAfterGc();
        interface HeapNode { callFrame: { functionName: string; url: string; lineNumber: number }; selfSize: number; children: HeapNode[] }
        const { profile: heap } = await historyInspector.send<{ profile: { head: HeapNode } }>('HeapProfiler.stopSampling');
        const sites = new Map<string, number>();
        const visit = (node: HeapNode, path: string[]) => {
          const here = [...path, `${node.callFrame.functionName || '(anon)'}@${node.callFrame.url.split('/').pop()}:${node.callFrame.lineNumber + 1}`];
          if (node.selfSize) sites.set(here.slice(-3).join(' < '), (sites.get(here.slice(-3).join(' < ')) ?? 0) + node.selfSize);
          for (const child of node.children) visit(child, here);
        };
        visit(heap.head, []);
        log(`history: heap after GC ${fmt(mem0.heapUsed / 1048576, 1)} MiB; sampled allocations during the loops (collected or not) by site:`);
        for (const [site, bytes] of [...sites].sort((a, b) => b[1] - a[1]).slice(0, 30)) log(`  ${fmt(bytes / 1024, 0)} KiB ${site}`);
        const file = join(tmpdir(), `probe-history-${Date.now()}.cpuprofile`);
        writeFileSync(file, JSON.stringify(raw));
        log(`history profile → ${file}`);
        historyInspector.close();
      }
    }
    if (process.env.PROBE_NODE_ARGS) writeFileSync(join(tmpdir(), 'probe-gateway-0.out'), gateways[0]!.proc.output());
  } finally {
    await cleanup();
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
