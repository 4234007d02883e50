/**
 * `pnpm bench`: FULL (two gateway processes + the worker, private database, private Redis)
 * against BARE (two plain Socket.IO processes) in one run, variants taking turns at each
 * offered rate; at fan-out 10 also ADAPTER (BARE's processes joined by the Redis adapter,
 * rooms spanning both), which splits FULL's gap into the cluster design's share and ours.
 * Prints issue 4's target table and writes BENCHMARKS.md. `--quick` for development (about
 * 2 minutes). Everything on 127.0.0.1; every loop bounded.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { Agent, get } from 'node:http';
import { connect as tcpConnect } from 'node:net';
import { cpus, freemem, totalmem, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import postgres from 'postgres';
import { dropDatabase, ensureDatabase, runMigrations } from '@chat/db';
import type { StepResult } from './lib/driver.ts';
import type { LoadgenSpec } from './loadgen.ts';
import { LoadgenClient, type LoadgenCommand } from './lib/loadgen-client.ts';
import { Inspector, summariseProfile, type CpuProfile, type ProfileSummary } from './lib/cdp.ts';
import { startCountingProxy } from './lib/pg-proxy.ts';
import { freePort } from '@chat/testing/ports';
import { ROOT, sleep, start, startBenchGateway, startNode, stopAll, waitHttpOk, waitOutput, type BenchGateway, type Proc } from './lib/procs.ts';
import { cpuMicros, cpuSplitMicros, fmt, fmtInt, median, percentiles, rssBytes, spread, type Percentiles } from './lib/stats.ts';

// ---------------------------------------------------------------------------------------------
// Settings
const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const outArg = argv.indexOf('--out');
const outPath = outArg >= 0 && argv[outArg + 1] ? argv[outArg + 1]! : quick ? join(tmpdir(), 'BENCHMARKS.quick.md') : join(ROOT, 'BENCHMARKS.md');
const ADMIN_URL = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

const S = quick
  ? {
      rounds: 1,
      warmupMs: 600,
      windowMs: 1500,
      settleMs: 300,
      rates10: [2000, 4000, 7000, 12_000, 19_000, 26_000],
      rates1: [3000, 7000, 12_000, 20_000, 30_000, 44_000],
      rooms10: 40,
      rooms1: 200,
      latencyWindowMs: 2000,
      idleConnections: 1000,
      historyRows: 100_000,
      historyRequests: 100,
      budgetMs: 3 * 60_000,
    }
  : {
      rounds: 3,
      warmupMs: 800,
      windowMs: 3000,
      settleMs: 400,
      // Each variant climbs until it saturates (SATURATED_SHARE), so the top rungs are for BARE.
      rates10: [1000, 2000, 3000, 4000, 5500, 7000, 9000, 12_000, 15_000, 19_000, 24_000, 30_000],
      rates1: [2000, 4000, 6000, 9000, 12_000, 16_000, 21_000, 27_000, 34_000, 44_000, 56_000],
      rooms10: 60,
      rooms1: 300,
      latencyWindowMs: 4000,
      idleConnections: 10_000,
      historyRows: 1_000_000,
      historyRequests: 400,
      budgetMs: 14 * 60_000,
    };
const MAX_OUTSTANDING = 300;
/**
 * ADAPTER runs at fan-out 10 only: the CPU targets are set there, every room spans both
 * processes there as in FULL, and a third variant at fan-out 1 would add minutes to the run.
 */
const withAdapter = (fanout: number) => fanout === 10;
/** A step that acknowledges less than this share of its offered rate has saturated its variant. */
const SATURATED_SHARE = 0.95;
const started = Date.now();
/** Each phase may start only before its share of the time budget is spent. */
const overBudget = (share = 1) => Date.now() - started > S.budgetMs * share;
const log = (line: string) => process.stdout.write(`[bench ${((Date.now() - started) / 1000).toFixed(0).padStart(4)}s] ${line}\n`);

// ---------------------------------------------------------------------------------------------
// Load generator over IPC
let loadgen: LoadgenClient | null = null;
function lg<T>(command: LoadgenCommand, timeoutMs?: number): Promise<T> {
  return loadgen ? loadgen.request<T>(command, timeoutMs) : Promise.reject(new Error('no loadgen'));
}

// ---------------------------------------------------------------------------------------------
// Measurement
interface Pids {
  gateways: number[];
  worker: number[];
  bare: number[];
  adapter: number[];
  redis: number[];
  postgres: number[];
  loadgen: number[];
}
type Role = keyof Pids;
const ROLES: Role[] = ['gateways', 'worker', 'bare', 'adapter', 'redis', 'postgres', 'loadgen'];

type Variant = 'FULL' | 'ADAPTER' | 'BARE';
/** The processes that serve each variant's clients. */
const SERVER_ROLE: Record<Variant, Role> = { FULL: 'gateways', ADAPTER: 'adapter', BARE: 'bare' };

interface Snap {
  t: number;
  cpu: Record<Role, number>;
  sys: Record<Role, number>;
  redis: Record<string, number>;
  roundTrips: number;
  commits: number;
  persisted: number;
  xact: number;
}

interface StepRecord {
  variant: Variant;
  fanout: number;
  round: number;
  rate: number;
  lg: StepResult;
  seconds: number;
  cpuPerSec: Record<Role, number>;
  sysPerSec: Record<Role, number>;
  persistedPerSec: number;
  dbRoundTripsPerMsg: number;
  txPerMsg: number;
  redisPerMsg: number;
  redisTop: [string, number][];
}

// ---------------------------------------------------------------------------------------------
async function main() {
  const secret = randomBytes(24).toString('hex');
  const dbName = `chat_bench_${randomBytes(4).toString('hex')}`;
  const dbUrlObj = new URL(ADMIN_URL);
  dbUrlObj.pathname = `/${dbName}`;
  const dbUrl = dbUrlObj.toString();
  const machine = describeMachine();
  log(`machine: ${machine.cpu}, ${machine.nproc} cores, ${machine.memGiB} GiB; ${quick ? 'QUICK' : 'FULL'} mode; ulimit -n ${machine.ulimit}`);

  let admin: postgres.Sql | null = null;
  let sql: postgres.Sql | null = null;
  let redis: Redis | null = null;
  let proxyClose: (() => Promise<void>) | null = null;
  let created = false;
  const cleanup = async () => {
    await loadgen?.stop();
    await stopAll();
    redis?.disconnect();
    await proxyClose?.().catch(() => undefined);
    await sql?.end({ timeout: 2 }).catch(() => undefined);
    await admin?.end({ timeout: 2 }).catch(() => undefined);
    if (created) await dropDatabase(dbUrl).catch((error: unknown) => log(`could not drop ${dbName}: ${String(error)}`));
  };
  let interrupted = false;
  const onSignal = () => {
    if (interrupted) return;
    interrupted = true;
    log('interrupted: cleaning up');
    void cleanup().then(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    // ---- services
    await ensureDatabase(dbUrl);
    created = true;
    await runMigrations(dbUrl);
    admin = postgres(ADMIN_URL, { max: 1, onnotice: () => {} });
    sql = postgres(dbUrl, { max: 4, onnotice: () => {} });
    const proxy = await startCountingProxy({ host: dbUrlObj.hostname, port: Number(dbUrlObj.port || 5432) });
    proxyClose = proxy.close;
    const proxiedUrl = new URL(dbUrl);
    proxiedUrl.hostname = '127.0.0.1';
    proxiedUrl.port = String(proxy.port);

    const redisPort = await freePort();
    const redisProc = start('redis', 'redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--maxmemory-policy', 'noeviction']);
    await waitOutput(redisProc, 'Ready to accept connections', 10_000);
    const redisUrl = `redis://127.0.0.1:${redisPort}`;
    redis = new Redis(redisUrl, { maxRetriesPerRequest: 1, retryStrategy: () => null });
    redis.on('error', () => undefined);
    const prefix = 'bench';

    const gateways: BenchGateway[] = [];
    for (let i = 0; i < 2; i++) {
      gateways.push(await startBenchGateway(`bench-gateway-${i}`, { databaseUrl: proxiedUrl.toString(), redisUrl, redisPrefix: prefix, jwtSecret: secret }));
    }
    const worker = startNode('worker', 'apps/worker/src/main.ts', {
      DATABASE_URL: dbUrl,
      REDIS_URL: redisUrl,
      REDIS_PREFIX: prefix,
      METRICS_PORT: '0',
      METRICS_HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      POD_NAME: 'bench-worker',
      NODE_ENV: 'production',
    });
    const bares: { proc: Proc; url: string; inspect: number }[] = [];
    for (let i = 0; i < 2; i++) {
      const port = await freePort();
      const inspect = await freePort();
      const proc = startNode(`bare-${i}`, 'test/bench/bare-server.ts', { PORT: String(port), NODE_ENV: 'production' }, [`--inspect=127.0.0.1:${inspect}`]);
      bares.push({ proc, url: `http://127.0.0.1:${port}`, inspect });
    }
    const adapters: { proc: Proc; url: string }[] = [];
    for (let i = 0; i < 2; i++) {
      const port = await freePort();
      const proc = startNode(`adapter-${i}`, 'test/bench/bare-server.ts', { PORT: String(port), NODE_ENV: 'production', REDIS_URL: redisUrl, REDIS_KEY: 'bench-adapter:socket.io' });
      adapters.push({ proc, url: `http://127.0.0.1:${port}` });
    }
    await Promise.all([
      ...gateways.map((g) => waitHttpOk(g.proc, `${g.url}/readyz`, 120_000)),
      ...[...bares, ...adapters].map((b) => waitHttpOk(b.proc, `${b.url}/healthz`, 120_000)),
    ]);
    loadgen = LoadgenClient.start(secret);
    log(`up: gateways ${gateways.map((g) => g.proc.pid).join(',')}, worker ${worker.pid}, bare ${bares.map((b) => b.proc.pid).join(',')}, adapter ${adapters.map((b) => b.proc.pid).join(',')}, redis ${redisProc.pid}, loadgen ${loadgen.pid}, db ${dbName}`);

    const adminSql = admin;
    const pgPids = async (): Promise<number[]> => {
      const rows = await adminSql<{ pid: number }[]>`
        select pid from pg_stat_activity
        where datname = ${dbName} or backend_type = 'walwriter'`;
      return rows.map((r) => r.pid);
    };
    const pids: Pids = {
      gateways: gateways.map((g) => g.proc.pid),
      worker: [worker.pid],
      bare: bares.map((b) => b.proc.pid),
      adapter: adapters.map((b) => b.proc.pid),
      redis: [redisProc.pid],
      postgres: await pgPids(),
      loadgen: [loadgen.pid],
    };

    const redisStats = async (): Promise<Record<string, number>> => {
      const info = await redis!.info('commandstats');
      const out: Record<string, number> = {};
      for (const match of info.matchAll(/cmdstat_([a-z|_-]+):calls=(\d+)/g)) out[match[1]!] = Number(match[2]);
      return out;
    };
    const persistedTotal = async (): Promise<number> => {
      let total = 0;
      for (const g of gateways) {
        const text = await (await fetch(`${g.url}/metrics`)).text();
        const match = /^chat_messages_persisted_total (\d+(?:\.\d+)?)/m.exec(text);
        total += match ? Number(match[1]) : 0;
      }
      return total;
    };
    const xactCommits = async (): Promise<number> => {
      const rows = await adminSql<{ x: string }[]>`select xact_commit::text as x from pg_stat_database where datname = ${dbName}`;
      return Number(rows[0]?.x ?? 0);
    };
    const snap = async (withFull: boolean): Promise<Snap> => {
      const t = performance.now();
      const cpu = {} as Record<Role, number>;
      const sys = {} as Record<Role, number>;
      for (const role of ROLES) {
        cpu[role] = pids[role].reduce((sum, pid) => sum + cpuMicros(pid), 0);
        sys[role] = pids[role].reduce((sum, pid) => sum + cpuSplitMicros(pid)[1], 0);
      }
      return {
        t,
        cpu,
        sys,
        redis: await redisStats(),
        roundTrips: proxy.roundTrips(),
        commits: proxy.commits(),
        persisted: withFull ? await persistedTotal() : 0,
        xact: withFull ? await xactCommits() : 0,
      };
    };

    // ---- seed users, rooms and memberships by SQL (a member's socket is put in its rooms at connect)
    const db = sql;
    const seedRooms = async (rooms: number, members: number, label: string) => {
      const owner = randomUUID();
      const users = Array.from({ length: rooms * members }, () => randomUUID());
      await db`insert into users (id, nickname) select id, nickname from jsonb_to_recordset(${JSON.stringify([{ id: owner, nickname: 'owner' }, ...users.map((id, i) => ({ id, nickname: `${label}${i}` }))])}::text::jsonb) as x(id uuid, nickname text)`;
      const roomIds = Array.from({ length: rooms }, () => randomUUID());
      await db`insert into rooms (id, name, created_by, member_count, created_at, expires_at)
        select id, name, ${owner}, ${members}, now(), now() + interval '1 day'
        from jsonb_to_recordset(${JSON.stringify(roomIds.map((id, i) => ({ id, name: `${label}-${i}` })))}::text::jsonb) as x(id uuid, name text)`;
      await db`insert into room_members (room_id, user_id)
        select room_id, user_id from jsonb_to_recordset(${JSON.stringify(users.map((user, i) => ({ room_id: roomIds[Math.floor(i / members)], user_id: user })))}::text::jsonb) as x(room_id uuid, user_id uuid)`;
      return { users, roomIds };
    };
    const openScenario = async (fanout: number, rooms: number) => {
      const seeded = await seedRooms(rooms, fanout, `f${fanout}u`);
      const full: LoadgenSpec[] = seeded.users.map((sub, i) => ({ url: gateways[i % 2]!.url, roomId: seeded.roomIds[Math.floor(i / fanout)]!, sub }));
      const bare: LoadgenSpec[] = seeded.users.map((_, i) => {
        const room = Math.floor(i / fanout);
        const roomId = `bare-${fanout}-${room}`;
        return { url: bares[room % 2]!.url, roomId, bareRoom: roomId };
      });
      // ADAPTER's rooms span both processes as FULL's do: members alternate between them.
      const adapter: LoadgenSpec[] = seeded.users.map((_, i) => {
        const roomId = `adapter-${fanout}-${Math.floor(i / fanout)}`;
        return { url: adapters[i % 2]!.url, roomId, bareRoom: roomId };
      });
      type Opened = { connected: number; failed: number; firstError: string | null };
      const a = await lg<Opened>({ cmd: 'open', group: `FULL-${fanout}`, namespace: '/socket', specs: full, concurrency: 50 });
      const b = await lg<Opened>({ cmd: 'open', group: `BARE-${fanout}`, namespace: '/socket', specs: bare, concurrency: 50 });
      const c = withAdapter(fanout) ? await lg<Opened>({ cmd: 'open', group: `ADAPTER-${fanout}`, namespace: '/socket', specs: adapter, concurrency: 50 }) : null;
      if (a.failed || b.failed || c?.failed) {
        throw new Error(`fan-out ${fanout}: FULL ${a.failed} / BARE ${b.failed} / ADAPTER ${c?.failed ?? 0} clients failed: ${a.firstError ?? b.firstError ?? c?.firstError}`);
      }
      log(`fan-out ${fanout}: ${rooms} rooms × ${fanout} members; FULL${c ? ' and ADAPTER' : ''} rooms span both processes; ${[a, b, c].filter((o) => o).map((o) => o!.connected).join(' + ')} clients connected`);
    };

    const step = async (variant: Variant, fanout: number, round: number, rate: number, windowMs = S.windowMs): Promise<StepRecord> => {
      const group = `${variant}-${fanout}`;
      const full = variant === 'FULL';
      await lg({ cmd: 'start', group, rate, maxOutstanding: MAX_OUTSTANDING });
      await sleep(S.warmupMs);
      if (full) pids.postgres = await pgPids();
      const a = await snap(full);
      await lg({ cmd: 'mark', group });
      await sleep(windowMs);
      const result = await lg<StepResult>({ cmd: 'stop', group });
      const b = await snap(full);
      await sleep(S.settleMs);
      const seconds = (b.t - a.t) / 1000;
      const cpuPerSec = {} as Record<Role, number>;
      const sysPerSec = {} as Record<Role, number>;
      for (const role of ROLES) {
        cpuPerSec[role] = (b.cpu[role] - a.cpu[role]) / seconds;
        sysPerSec[role] = (b.sys[role] - a.sys[role]) / seconds;
      }
      const persisted = b.persisted - a.persisted;
      const redisDelta: [string, number][] = Object.entries(b.redis)
        .map(([name, calls]): [string, number] => [name, calls - (a.redis[name] ?? 0) - (name === 'info' ? 1 : 0)])
        .filter(([, calls]) => calls > 0);
      const redisCalls = redisDelta.reduce((sum, [, calls]) => sum + calls, 0);
      return {
        variant,
        fanout,
        round,
        rate,
        lg: result,
        seconds,
        cpuPerSec,
        sysPerSec,
        persistedPerSec: persisted / seconds,
        dbRoundTripsPerMsg: full && persisted ? (b.roundTrips - a.roundTrips) / persisted : Number.NaN,
        txPerMsg: full && persisted ? (b.commits - a.commits) / persisted : Number.NaN,
        redisPerMsg: full && persisted ? redisCalls / persisted : Number.NaN,
        redisTop: full && persisted ? redisDelta.sort((x, y) => y[1] - x[1]).slice(0, 6).map(([n, c]): [string, number] => [n, c / persisted]) : [],
      };
    };
    const describe = (r: StepRecord) =>
      `${r.variant} fo${r.fanout} r${r.round} offered ${fmtInt(r.rate)}/s: acked ${fmtInt(r.lg.ackedPerSec)}/s, deliveries ${fmtInt(r.lg.deliveriesPerSec)}/s, ` +
      `p50/p99 ${fmt(r.lg.latency.p50, 2)}/${fmt(r.lg.latency.p99, 1)} ms, cpu ${fmt(r.cpuPerSec[SERVER_ROLE[r.variant]] / 1e4, 0)}%` +
      (r.variant === 'ADAPTER' ? ` (+redis ${fmt(r.cpuPerSec.redis / 1e4, 0)}%)` : '') +
      (r.variant === 'FULL' ? ` (+redis ${fmt(r.cpuPerSec.redis / 1e4, 0)}% pg ${fmt(r.cpuPerSec.postgres / 1e4, 0)}%), rt/msg ${fmt(r.dbRoundTripsPerMsg, 3)}, tx/msg ${fmt(r.txPerMsg, 3)}, redis/msg ${fmt(r.redisPerMsg, 2)}` : '') +
      `, loadgen ${fmt(r.cpuPerSec.loadgen / 1e4, 0)}%` +
      (r.lg.ackFailed ? `, ack failures ${r.lg.ackFailed} ${JSON.stringify(r.lg.errors)}` : '');

    // ---- saturation sweeps, variants taking turns at each offered rate
    const records: StepRecord[] = [];
    /** Variants (by fan-out and round) that were still keeping up at the top offered rate. */
    const unsaturated: string[] = [];
    const sweep = async (fanout: number, rooms: number, rates: number[]) => {
      await openScenario(fanout, rooms);
      for (let round = 1; round <= S.rounds; round++) {
        // A variant stops climbing once a step both falls behind its offered rate and adds no
        // throughput (under 3% more deliveries than its best so far); the others go on without it.
        const variants: Variant[] = withAdapter(fanout) ? ['FULL', 'ADAPTER', 'BARE'] : ['FULL', 'BARE'];
        const saturated = new Set<Variant>();
        const best: Record<Variant, number> = { FULL: 0, ADAPTER: 0, BARE: 0 };
        for (const rate of rates) {
          if (overBudget(fanout === 10 ? 0.48 : 0.74)) return;
          // The order rotates at each rate, so each variant takes each place in turn.
          const turn = (round + rates.indexOf(rate)) % variants.length;
          const order = [...variants.slice(turn), ...variants.slice(0, turn)];
          const climbing = order.filter((variant) => !saturated.has(variant));
          if (climbing.length === 0) break;
          for (const variant of climbing) {
            const record = await step(variant, fanout, round, rate);
            records.push(record);
            log(describe(record));
            const behind = record.lg.ackedPerSec < SATURATED_SHARE * rate;
            if (behind && record.lg.deliveriesPerSec < 1.03 * best[variant]) saturated.add(variant);
            best[variant] = Math.max(best[variant], record.lg.deliveriesPerSec);
          }
        }
        for (const variant of variants) {
          if (!saturated.has(variant)) unsaturated.push(`${variant} fan-out ${fanout} round ${round}`);
        }
      }
    };
    await sweep(10, S.rooms10, S.rates10);
    await lg({ cmd: 'close', group: 'ADAPTER-10' });
    const xactBefore1 = await xactCommits();
    const persistedBefore1 = await persistedTotal();
    await sweep(1, S.rooms1, S.rates1);
    const xactAfter1 = await xactCommits();
    const persistedAfter1 = await persistedTotal();

    // saturation point of each variant in each round = the step with the most deliveries
    const saturation = (variant: Variant, fanout: number) => {
      const out: StepRecord[] = [];
      for (let round = 1; round <= S.rounds; round++) {
        const steps = records.filter((r) => r.variant === variant && r.fanout === fanout && r.round === round);
        const best = steps.sort((x, y) => y.lg.deliveriesPerSec - x.lg.deliveriesPerSec)[0];
        if (best) out.push(best);
      }
      return out;
    };
    const sat = {
      full10: saturation('FULL', 10),
      bare10: saturation('BARE', 10),
      adapter10: saturation('ADAPTER', 10),
      full1: saturation('FULL', 1),
      bare1: saturation('BARE', 1),
    };
    const fullMaxMsgs = Math.max(100, median(sat.full10.map((r) => r.lg.ackedPerSec)));

    // ---- latency at 50% and 80% of FULL's max (fan-out 10), variants taking turns
    const latency: StepRecord[] = [];
    await lg({ cmd: 'close', group: 'FULL-1' });
    await lg({ cmd: 'close', group: 'BARE-1' });
    for (let round = 1; round <= S.rounds && !overBudget(0.8); round++) {
      for (const share of [0.5, 0.8]) {
        const rate = Math.max(100, Math.round(fullMaxMsgs * share));
        for (const variant of round % 2 ? (['FULL', 'BARE'] as const) : (['BARE', 'FULL'] as const)) {
          const record = await step(variant, 10, round, rate, S.latencyWindowMs);
          record.rate = share; // keep the share for grouping
          latency.push(record);
          log(`latency ${Math.round(share * 100)}%: ${describe({ ...record, rate })}`);
        }
      }
    }

    // ---- hot-path audit: what each message costs in Redis, by command and channel (MONITOR)
    const audit = overBudget(0.82) ? null : await auditRedis(redisPort, prefix, Math.max(200, Math.round(fullMaxMsgs * 0.3)));
    if (audit) log(`audit: ${audit.messages} messages in ${fmt(audit.seconds, 1)} s; per message: ${Object.entries(audit.perMessage).map(([k, v]) => `${k} ${fmt(v, 3)}`).join(', ')}`);

    // ---- profile one gateway at saturation
    let profile: ProfileSummary | null = null;
    if (!overBudget(0.84)) {
      const inspector = await Inspector.attach(gateways[0]!.inspect);
      await lg({ cmd: 'start', group: 'FULL-10', rate: Math.round(fullMaxMsgs * 1.5), maxOutstanding: MAX_OUTSTANDING });
      await sleep(1000);
      await inspector.send('Profiler.enable');
      await inspector.send('Profiler.setSamplingInterval', { interval: 500 });
      await inspector.send('Profiler.start');
      await sleep(quick ? 2000 : 4000);
      const { profile: raw } = await inspector.send<{ profile: CpuProfile }>('Profiler.stop');
      await lg<StepResult>({ cmd: 'stop', group: 'FULL-10' });
      inspector.close();
      const file = join(tmpdir(), `bench-gateway-${Date.now()}.cpuprofile`);
      writeFileSync(file, JSON.stringify(raw));
      profile = summariseProfile(raw);
      log(`profile of gateway-0 at saturation written to ${file}`);
    }
    await lg({ cmd: 'close', group: 'FULL-10' });
    await lg({ cmd: 'close', group: 'BARE-10' });
    await sleep(1000);

    // ---- memory per idle connection
    const idle: Record<'FULL' | 'BARE', { n: number; rssPerConn: number; heapPerConn: number; connectMs: number } | null> = { FULL: null, BARE: null };
    const softLimit = Number(machine.ulimit) || 1024;
    const idleN = Math.min(S.idleConnections, softLimit - 2000);
    if (!overBudget(0.86)) {
      const ids = (await db<{ id: string }[]>`insert into users (id, nickname) select gen_random_uuid(), 'idle' || g from generate_series(1, ${idleN}) g returning id`).map((r) => r.id);
      for (const variant of ['FULL', 'BARE'] as const) {
        const targets = variant === 'FULL' ? gateways : bares;
        const inspectors = await Promise.all(targets.map((t) => Inspector.attach(t.inspect)));
        const before = await Promise.all(inspectors.map((i) => i.memoryAfterGc()));
        const rssBefore = targets.reduce((sum, t) => sum + rssBytes(t.proc.pid), 0);
        const specs: LoadgenSpec[] = ids.map((sub, i) => (variant === 'FULL' ? { url: targets[i % 2]!.url, roomId: null, sub } : { url: targets[i % 2]!.url, roomId: null, bareRoom: null }));
        const opened = await lg<{ connected: number; failed: number; ms: number; firstError: string | null }>({ cmd: 'open', group: `idle-${variant}`, namespace: '/socket', specs, concurrency: 100, deadlineMs: quick ? 15_000 : 75_000 }, 180_000);
        await sleep(2000);
        const after = await Promise.all(inspectors.map((i) => i.memoryAfterGc()));
        const rssAfter = targets.reduce((sum, t) => sum + rssBytes(t.proc.pid), 0);
        const heapDelta = after.reduce((s, m) => s + m.heapUsed, 0) - before.reduce((s, m) => s + m.heapUsed, 0);
        idle[variant] = { n: opened.connected, rssPerConn: (rssAfter - rssBefore) / opened.connected, heapPerConn: heapDelta / opened.connected, connectMs: opened.ms };
        log(`idle ${variant}: ${opened.connected} connected (${opened.failed} failed${opened.firstError ? `: ${opened.firstError}` : ''}) in ${fmt(opened.ms / 1000, 1)} s; RSS ${fmt(idle[variant]!.rssPerConn / 1024, 1)} KiB/conn, heap ${fmt(heapDelta / opened.connected / 1024, 1)} KiB/conn`);
        await lg({ cmd: 'close', group: `idle-${variant}` });
        for (const i of inspectors) i.close();
        await sleep(1500);
      }
    }

    // ---- history page p99 at depth 0 and deep in a room of historyRows messages
    const history: { label: string; p: Percentiles }[] = [];
    let historyInsertMs = Number.NaN;
    if (!overBudget(0.95)) {
      const small = await seedRooms(1, 1, 'hs');
      const big = await seedRooms(1, 1, 'hb');
      const insertRows = async (roomId: string, userId: string, n: number) => {
        await db`insert into messages (id, room_id, user_id, type, content, seq, created_at, expires_at)
          select gen_random_uuid(), ${roomId}, ${userId}, 'text', 'history message ' || g, g,
                 now() - (${n} - g) * interval '1 millisecond', (select expires_at from rooms where id = ${roomId})
          from generate_series(1, ${n}) g`;
        await db`update rooms set last_seq = ${n} where id = ${roomId}`;
      };
      await insertRows(small.roomIds[0]!, small.users[0]!, 60);
      const t0 = performance.now();
      await insertRows(big.roomIds[0]!, big.users[0]!, S.historyRows);
      historyInsertMs = performance.now() - t0;
      await db`analyze messages`;
      log(`history: ${fmtInt(S.historyRows)} messages inserted with one INSERT … SELECT generate_series in ${fmt(historyInsertMs / 1000, 1)} s`);
      const idAt = async (roomId: string, seq: number) => (await db<{ id: string }[]>`select id from messages where room_id = ${roomId} and seq = ${seq}`)[0]!.id;
      const mid = await idAt(big.roomIds[0]!, Math.floor(S.historyRows / 2));
      const deep = await idAt(big.roomIds[0]!, 100);
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      const base = gateways[0]!.url;
      const cases = [
        { label: 'small room (60 messages), newest page', path: `/api/rooms/${small.roomIds[0]}/messages?limit=50` },
        { label: `${fmtInt(S.historyRows)} messages, newest page (depth 0)`, path: `/api/rooms/${big.roomIds[0]}/messages?limit=50` },
        { label: `${fmtInt(S.historyRows)} messages, before the middle (depth ${fmtInt(S.historyRows / 2)})`, path: `/api/rooms/${big.roomIds[0]}/messages?limit=50&before=${mid}` },
        { label: `${fmtInt(S.historyRows)} messages, before seq 100 (depth ${fmtInt(S.historyRows - 100)})`, path: `/api/rooms/${big.roomIds[0]}/messages?limit=50&before=${deep}` },
      ];
      for (const c of cases) {
        const times: number[] = [];
        for (let i = 0; i < S.historyRequests + 30; i++) {
          const t = performance.now();
          const status = await httpGet(agent, `${base}${c.path}`);
          if (status !== 200) throw new Error(`history ${c.path}: HTTP ${status}`);
          if (i >= 30) times.push(performance.now() - t);
        }
        const p = percentiles(times);
        history.push({ label: c.label, p });
        log(`history ${c.label}: p50 ${fmt(p.p50, 2)} ms, p99 ${fmt(p.p99, 2)} ms`);
      }
      agent.destroy();
    }

    // ---- report
    const report = buildReport({
      machine,
      quick,
      records,
      sat,
      latency,
      audit,
      profile,
      idle,
      idleN,
      history,
      historyInsertMs,
      fullMaxMsgs,
      xactPerMsgFanout1: (xactAfter1 - xactBefore1) / Math.max(1, persistedAfter1 - persistedBefore1),
      elapsedMs: Date.now() - started,
      budgetHit: overBudget(),
      unsaturated,
    });
    process.stdout.write(`\n${report.table}\n`);
    writeFileSync(outPath, keepAnalysis(outPath, report.markdown));
    log(`wrote ${outPath}`);
  } finally {
    await cleanup();
  }
}

function httpGet(agent: Agent, url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const request = get(url, { agent }, (response) => {
      response.resume();
      response.on('end', () => resolve(response.statusCode ?? 0));
    });
    request.setTimeout(5000, () => request.destroy(new Error('timeout')));
    request.on('error', reject);
  });
}

// ---------------------------------------------------------------------------------------------
interface Audit {
  messages: number;
  seconds: number;
  perMessage: Record<string, number>;
  perSecond: Record<string, number>;
}

/**
 * Sends at `rate` for 2 s with a MONITOR session on the private Redis and classifies every
 * command: PUBLISH to a room channel (a broadcast), PUBLISH to the adapter's request/response
 * channels (fetchSockets, serverSideEmit, socketsJoin…), BullMQ keys, rate-limit keys, other;
 * commands run inside Lua scripts (`[0 lua]`) apart from the ones clients sent.
 */
async function auditRedis(port: number, prefix: string, rate: number): Promise<Audit> {
  const socket = tcpConnect(port, '127.0.0.1');
  const counts: Record<string, number> = {};
  let buffer = '';
  let lines = 0;
  const add = (key: string) => (counts[key] = (counts[key] ?? 0) + 1);
  socket.on('data', (chunk) => {
    buffer += chunk.toString('utf8');
    let nl: number;
    while ((nl = buffer.indexOf('\n')) >= 0 && lines < 5_000_000) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      const match = /^\+\d+\.\d+ \[\d+ ([^\]]+)\] "([^"]+)"(?: "([^"]*)")?/.exec(line);
      if (!match) continue;
      lines++;
      const inLua = match[1] === 'lua';
      const command = match[2]!.toLowerCase();
      const first = match[3] ?? '';
      if (command === 'info' || command === 'monitor') continue;
      let kind: string;
      if (command === 'publish' || command === 'spublish') {
        if (first.includes('-request#') || first.includes('-response#')) kind = 'publish:adapter-request/response';
        else if (first.includes('#room:')) kind = 'publish:room-broadcast';
        else kind = 'publish:other';
      } else if (/bull/i.test(line)) kind = `bullmq:${command}`;
      else if (line.includes(`${prefix}:rl:`)) kind = `rate-limit:${command}`;
      else kind = `other:${command}`;
      add(inLua ? `(in Lua) ${kind}` : kind);
    }
  });
  socket.write('MONITOR\r\n');
  await sleep(200);
  const t0 = performance.now();
  await lg({ cmd: 'start', group: 'FULL-10', rate, maxOutstanding: MAX_OUTSTANDING });
  await lg({ cmd: 'mark', group: 'FULL-10' });
  await sleep(2000);
  const result = await lg<StepResult>({ cmd: 'stop', group: 'FULL-10' });
  await sleep(300);
  socket.destroy();
  const seconds = (performance.now() - t0) / 1000;
  const messages = Math.max(1, result.sent - result.ackFailed);
  const perMessage: Record<string, number> = {};
  const perSecond: Record<string, number> = {};
  for (const [key, value] of Object.entries(counts).sort((a, b) => b[1] - a[1])) {
    perMessage[key] = value / messages;
    perSecond[key] = value / seconds;
  }
  return { messages, seconds, perMessage, perSecond };
}

// ---------------------------------------------------------------------------------------------
function describeMachine() {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const model = /model name\s*:\s*(.+)/.exec(cpuinfo)?.[1] ?? cpus()[0]?.model ?? 'unknown';
  const mhz = /cpu MHz\s*:\s*(.+)/.exec(cpuinfo)?.[1] ?? '';
  let ulimit = '';
  try {
    ulimit = readFileSync('/proc/self/limits', 'utf8').match(/Max open files\s+(\d+)\s+(\d+)/)?.slice(1).join(' / ') ?? '';
  } catch {
    /* ignore */
  }
  let loadavg = '';
  try {
    loadavg = readFileSync('/proc/loadavg', 'utf8').trim();
  } catch {
    /* ignore */
  }
  return {
    cpu: model.trim(),
    mhz: mhz.trim(),
    nproc: cpus().length,
    memGiB: (totalmem() / 2 ** 30).toFixed(1),
    freeGiB: (freemem() / 2 ** 30).toFixed(1),
    ulimit: ulimit.split(' / ')[0] ?? '',
    ulimitBoth: ulimit,
    node: process.version,
    loadavg,
    date: new Date().toISOString(),
  };
}

interface ReportInput {
  machine: ReturnType<typeof describeMachine>;
  quick: boolean;
  records: StepRecord[];
  sat: { full10: StepRecord[]; bare10: StepRecord[]; adapter10: StepRecord[]; full1: StepRecord[]; bare1: StepRecord[] };
  latency: StepRecord[];
  audit: Audit | null;
  profile: ProfileSummary | null;
  idle: Record<'FULL' | 'BARE', { n: number; rssPerConn: number; heapPerConn: number; connectMs: number } | null>;
  idleN: number;
  history: { label: string; p: Percentiles }[];
  historyInsertMs: number;
  fullMaxMsgs: number;
  xactPerMsgFanout1: number;
  elapsedMs: number;
  budgetHit: boolean;
  /** Variants still keeping up at the top offered rate: their "saturation" is only a lower bound. */
  unsaturated: string[];
}

const ms = (v: number) => `${fmt(v, v < 10 ? 2 : 1)} ms`;
function ms3(values: number[], digits = 2, unit = '') {
  const [lo, hi] = spread(values);
  return values.length > 1 ? `${fmt(median(values), digits)}${unit} [${fmt(lo, digits)}–${fmt(hi, digits)}]` : `${fmt(median(values), digits)}${unit}`;
}

function buildReport(input: ReportInput): { table: string; markdown: string } {
  const { sat, latency, idle, history } = input;
  const cpuPerDelivery = (r: StepRecord, roles: Role[]) => roles.reduce((s, role) => s + r.cpuPerSec[role], 0) / r.lg.deliveriesPerSec;
  const pairRatio = (full: StepRecord[], bare: StepRecord[], f: (r: StepRecord) => number) =>
    full.map((r, i) => (bare[i] ? f(r) / f(bare[i]!) : Number.NaN));
  const thr10 = pairRatio(sat.full10, sat.bare10, (r) => r.lg.deliveriesPerSec);
  const thr1 = pairRatio(sat.full1, sat.bare1, (r) => r.lg.deliveriesPerSec);
  const cpuGw10 = sat.full10.map((r, i) => (sat.bare10[i] ? cpuPerDelivery(r, ['gateways']) / cpuPerDelivery(sat.bare10[i]!, ['bare']) : Number.NaN));
  const cpuAll10 = sat.full10.map((r, i) => (sat.bare10[i] ? cpuPerDelivery(r, ['gateways', 'worker', 'redis', 'postgres']) / cpuPerDelivery(sat.bare10[i]!, ['bare']) : Number.NaN));
  const rt = sat.full10.map((r) => r.dbRoundTripsPerMsg).concat(sat.full1.map((r) => r.dbRoundTripsPerMsg));
  const tx = sat.full10.map((r) => r.txPerMsg).concat(sat.full1.map((r) => r.txPerMsg));
  const lat = (variant: 'FULL' | 'BARE', share: number) => latency.filter((r) => r.variant === variant && r.rate === share);
  const l50 = lat('FULL', 0.5);
  const rssKiB = idle.FULL ? idle.FULL.rssPerConn / 1024 : Number.NaN;
  const bigPages = history.filter((h) => !h.label.startsWith('small'));
  const histP99 = Math.max(...bigPages.map((h) => h.p.p99));
  const flat = bigPages.length ? Math.max(...bigPages.map((h) => h.p.p50)) / Math.min(...bigPages.map((h) => h.p.p50)) : Number.NaN;

  const verdict = (ok: boolean | null) => (ok === null ? 'n/a' : ok ? 'met' : 'MISSED');
  // Against a BARE that never saturated, a ratio flatters FULL: a miss stands, a pass is unproven.
  const bareUnsaturated = (fanout: number) => input.unsaturated.some((u) => u.startsWith(`BARE fan-out ${fanout} `));
  const versusBare = (fanout: number, ok: boolean | null) => (ok && bareUnsaturated(fanout) ? 'unproven (BARE not saturated)' : verdict(ok));
  const rows: [string, string, string, string][] = [
    ['FULL/BARE deliveries/s at saturation, fan-out 10', '≥ 0.80', ms3(thr10), versusBare(10, thr10.length ? median(thr10) >= 0.8 : null)],
    ['FULL/BARE deliveries/s at saturation, fan-out 1', '≥ 0.50', ms3(thr1), versusBare(1, thr1.length ? median(thr1) >= 0.5 : null)],
    ['server CPU per delivery FULL÷BARE, fan-out 10, gateways', '≤ 1.6', ms3(cpuGw10), versusBare(10, cpuGw10.length ? median(cpuGw10) <= 1.6 : null)],
    ['… with Redis + Postgres (+ worker)', '≤ 2.0', ms3(cpuAll10), versusBare(10, cpuAll10.length ? median(cpuAll10) <= 2.0 : null)],
    ['database round trips per message at saturation', '≤ 0.05', `${ms3(rt, 3)} (transactions/msg ${ms3(tx, 3)})`, verdict(rt.length ? median(rt) <= 0.05 : null)],
    ['send→receive p50 at 50% of FULL max', '≤ 5 ms', ms3(l50.map((r) => r.lg.latency.p50), 2, ' ms'), verdict(l50.length ? median(l50.map((r) => r.lg.latency.p50)) <= 5 : null)],
    ['send→receive p99 at 50% of FULL max', '≤ 50 ms', ms3(l50.map((r) => r.lg.latency.p99), 1, ' ms'), verdict(l50.length ? median(l50.map((r) => r.lg.latency.p99)) <= 50 : null)],
    [`RSS per idle connection (${fmtInt(idle.FULL?.n ?? input.idleN)} connections)`, '≤ 20 KiB', `${fmt(rssKiB, 1)} KiB`, verdict(Number.isFinite(rssKiB) ? rssKiB <= 20 : null)],
    [`history page p99 at ${fmtInt(bigPages.length ? input.quick ? 100_000 : 1_000_000 : 0)} messages`, '≤ 5 ms, flat', `${ms(histP99)} (p50 max/min over depths ${fmt(flat, 2)}×)`, verdict(Number.isFinite(histP99) ? histP99 <= 5 && flat < 1.5 : null)],
  ];
  const widths = [0, 1, 2, 3].map((c) => Math.max(...rows.map((r) => r[c]!.length), ['figure', 'target', 'measured: median [min–max]', 'verdict'][c]!.length));
  const line = (cells: string[]) => cells.map((cell, c) => cell.padEnd(widths[c]!)).join(' | ');
  const table = [line(['figure', 'target', 'measured: median [min–max]', 'verdict']), widths.map((w) => '-'.repeat(w)).join('-|-'), ...rows.map(line)].join('\n');

  const md: string[] = [];
  const m = input.machine;
  md.push('# Benchmarks', '');
  md.push(`Generated by \`pnpm bench${input.quick ? ' --quick' : ''}\` on ${m.date} in ${fmt(input.elapsedMs / 60000, 1)} min${input.budgetHit ? ' (time budget reached: later phases skipped)' : ''}.`, '');
  md.push('## Machine', '');
  md.push(`- CPU: ${m.cpu}${m.mhz ? ` @ ${m.mhz} MHz` : ''}; \`nproc\` = ${m.nproc}`);
  md.push(`- memory: ${m.memGiB} GiB total, ${m.freeGiB} GiB free at start; no swap used by the run`);
  md.push(`- Node ${m.node}; open files limit (soft / hard) ${m.ulimitBoth}; load average at start: ${m.loadavg}`);
  md.push('- everything on 127.0.0.1: Postgres 15 (shared instance, private database `chat_bench_*`, dropped at the end; `synchronous_commit = on`), a private `redis-server` on a free port, the processes below.');
  // The 1-minute load average at start tells whether something else was running.
  const busy = Number(String(m.loadavg).split(' ')[0]) > Number(m.nproc);
  md.push(
    busy
      ? '- **The machine was busy** at start (1-minute load average above the number of cores): absolute figures are noisy; ratios come from variants measured seconds apart in the same run.'
      : '- The machine was otherwise idle at start; ratios still come from variants measured seconds apart in the same run.',
    '',
  );
  md.push('## Method', '');
  md.push('- FULL = two real gateway processes (`apps/gateway/src/main.ts`, Redis adapter, group commit, auth) + the worker; every fan-out-10 room has 5 members on each gateway. BARE = two plain Socket.IO 4.8 processes (`test/bench/bare-server.ts`: websocket only, perMessageDeflate off, no auth, no database, no adapter, each room local to one process, same payload shape).');
  md.push("- ADAPTER (fan-out 10 only) = BARE's two processes joined through `@socket.io/redis-adapter` on the same private Redis, every room with 5 members on each, as in FULL: the cluster design with none of the gateway's work. ADAPTER/BARE is what the design costs; FULL/ADAPTER is what the gateway's own work (auth, validation, rate limit, group commit, presence) costs on top.");
  md.push('- The load generator (`test/bench/loadgen.ts`) is its own process: a minimal Engine.IO v4 / Socket.IO v5 speaker over `ws`. Each client sends `send-message` with an ack; the offered rate is stepped up and sends are skipped while ' + `${MAX_OUTSTANDING} acks are outstanding, so it paces on what the server takes. Latency = receive time − send time carried in the message content (same process clock), over every delivery.`);
  md.push(`- Each offered rate runs the variants back to back (order turning), ${fmt(S.warmupMs / 1000, 1)} s warm-up + ${fmt(S.windowMs / 1000, 1)} s window each; ${S.rounds} round(s). Each variant climbs the offered rates (${S.rates10.map(fmtInt).join(', ')} msg/s at fan-out 10; ${S.rates1.map(fmtInt).join(', ')} at fan-out 1) until a step both acknowledges less than ${Math.round(SATURATED_SHARE * 100)}% of its offered rate and adds under 3% to its best deliveries/s so far; the others go on without it. Saturation = each variant's step with the most deliveries/s in a round; ratios are taken within a round, then median [min–max] over rounds.`);
  md.push('- CPU from `/proc/<pid>/stat` (utime+stime) of: the gateways; the worker; the private redis-server; the Postgres backends connected to the bench database plus the walwriter (found in `pg_stat_activity`); the BARE and ADAPTER processes; the load generator.');
  md.push('- Database round trips are counted by a TCP relay between the gateways and Postgres (a client→server burst after a server reply = one round trip; pipelined statements count once); transactions by the COMMITs it relays. Redis commands from `INFO commandstats` deltas on the private Redis; a MONITOR audit classifies them.', '');

  md.push('## Targets (issue 4)', '', '| figure | target | measured: median [min–max] | verdict |', '|---|---|---|---|');
  for (const r of rows) md.push(`| ${r.join(' | ')} |`);
  md.push('');

  md.push('## Saturation', '', '| fan-out | variant | deliveries/s | messages acked/s | persisted/s | server CPU µs/delivery (gateways, adapter or bare processes) | + worker, Redis, Postgres (FULL); + Redis (ADAPTER) | kernel share | loadgen CPU |', '|---|---|---|---|---|---|---|---|---|');
  const withServices: Record<Variant, Role[] | null> = { FULL: ['gateways', 'worker', 'redis', 'postgres'], ADAPTER: ['adapter', 'redis'], BARE: null };
  const saturationRows: [number, Variant, StepRecord[]][] = [[10, 'FULL', sat.full10], [10, 'ADAPTER', sat.adapter10], [10, 'BARE', sat.bare10], [1, 'FULL', sat.full1], [1, 'BARE', sat.bare1]];
  for (const [fanout, variant, list] of saturationRows) {
    if (!list.length) continue;
    const own = SERVER_ROLE[variant];
    const services = withServices[variant];
    md.push(`| ${fanout} | ${variant} | ${ms3(list.map((r) => r.lg.deliveriesPerSec), 0)} | ${ms3(list.map((r) => r.lg.ackedPerSec), 0)} | ${variant === 'FULL' ? ms3(list.map((r) => r.persistedPerSec), 0) : '—'} | ${ms3(list.map((r) => cpuPerDelivery(r, [own])), 1)} | ${services ? ms3(list.map((r) => cpuPerDelivery(r, services)), 1) : '—'} | ${ms3(list.map((r) => (100 * r.sysPerSec[own]) / r.cpuPerSec[own]), 0, '%')} | ${ms3(list.map((r) => r.cpuPerSec.loadgen / 1e4), 0, '%')} |`);
  }
  if (input.unsaturated.length) {
    md.push('', `**Not saturated at the top offered rate** (its figures are a lower bound on its capacity, and a ratio against it an upper bound): ${input.unsaturated.join('; ')}.`);
  }
  md.push('', `FULL/BARE: fan-out 10 ${ms3(thr10)}, fan-out 1 ${ms3(thr1)}. CPU per delivery FULL÷BARE at fan-out 10: gateways ${ms3(cpuGw10)}, with Redis + Postgres + worker ${ms3(cpuAll10)}; at fan-out 1: gateways ${ms3(sat.full1.map((r, i) => (sat.bare1[i] ? cpuPerDelivery(r, ['gateways']) / cpuPerDelivery(sat.bare1[i]!, ['bare']) : Number.NaN)))}.`, '');
  // CPU per delivery falls as load rises (more work per wake-up), and BARE saturates at a much
  // higher rate than FULL: the ratio against BARE's step of about FULL's saturation throughput
  // separates cost from load level.
  const sameLoad = sat.full10.flatMap((full) => {
    const near = (r: StepRecord) => Math.abs(r.lg.deliveriesPerSec - full.lg.deliveriesPerSec);
    const bare = input.records
      .filter((r) => r.variant === 'BARE' && r.fanout === 10 && r.round === full.round)
      .sort((a, b) => near(a) - near(b))[0];
    return bare ? [{ bare, gw: cpuPerDelivery(full, ['gateways']) / cpuPerDelivery(bare, ['bare']), all: cpuPerDelivery(full, ['gateways', 'worker', 'redis', 'postgres']) / cpuPerDelivery(bare, ['bare']) }] : [];
  });
  if (sameLoad.length) {
    md.push(`The same ratio against BARE at about FULL's saturation throughput (BARE's steps of ${sameLoad.map((r) => fmtInt(r.bare.lg.deliveriesPerSec)).join(', ')} deliveries/s), for comparison only (the verdicts above compare each variant at its own saturation): gateways ${ms3(sameLoad.map((r) => r.gw))}, with Redis + Postgres + worker ${ms3(sameLoad.map((r) => r.all))}.`, '');
  }
  if (sat.adapter10.length) {
    // Within each round, at each variant's own saturation: the design's share, then ours.
    const adapterThr = pairRatio(sat.adapter10, sat.bare10, (r) => r.lg.deliveriesPerSec);
    const fullThr = pairRatio(sat.full10, sat.adapter10, (r) => r.lg.deliveriesPerSec);
    const adapterCpu = sat.adapter10.map((r, i) => (sat.bare10[i] ? cpuPerDelivery(r, ['adapter']) / cpuPerDelivery(sat.bare10[i]!, ['bare']) : Number.NaN));
    const adapterCpuRedis = sat.adapter10.map((r, i) => (sat.bare10[i] ? cpuPerDelivery(r, ['adapter', 'redis']) / cpuPerDelivery(sat.bare10[i]!, ['bare']) : Number.NaN));
    const fullCpu = sat.full10.map((r, i) => (sat.adapter10[i] ? cpuPerDelivery(r, ['gateways']) / cpuPerDelivery(sat.adapter10[i]!, ['adapter']) : Number.NaN));
    md.push(
      `Where FULL's gap at fan-out 10 comes from (each variant at its own saturation, within a round): the cluster design alone, ADAPTER/BARE, ${ms3(adapterThr)} in deliveries/s and ${ms3(adapterCpu)}× BARE's CPU per delivery (${ms3(adapterCpuRedis)}× with Redis); the gateway's own work on top, FULL/ADAPTER, ${ms3(fullThr)} in deliveries/s and ${ms3(fullCpu)}× ADAPTER's CPU per delivery.`,
      '',
    );
  }

  md.push('## Hot path (counted, FULL at saturation)', '');
  md.push(`- database round trips per persisted message: ${ms3(rt, 3)}; transactions per message: ${ms3(tx, 3)} (pg_stat_database xact_commit over the whole fan-out-1 sweep, worker included: ${fmt(input.xactPerMsgFanout1, 3)} per message).`);
  md.push(`- Redis commands per message: fan-out 10 ${ms3(sat.full10.map((r) => r.redisPerMsg), 2)}, fan-out 1 ${ms3(sat.full1.map((r) => r.redisPerMsg), 2)}; by command (fan-out 10, round 1): ${(sat.full10[0]?.redisTop ?? []).map(([n, v]) => `${n} ${fmt(v, 3)}`).join(', ')}.`);
  if (input.audit) {
    const a = input.audit;
    const perMsg = Object.entries(a.perMessage).filter(([, v]) => v >= 0.05);
    const background = Object.entries(a.perSecond).filter(([k]) => (a.perMessage[k] ?? 0) < 0.05);
    const sent = Object.entries(a.perMessage).filter(([k]) => !k.startsWith('(in Lua)')).reduce((s2, [, v]) => s2 + v, 0);
    md.push(`- MONITOR audit, ${fmtInt(a.messages)} messages in ${fmt(a.seconds, 1)} s at 30% of FULL max. Per message (≥ 0.05): ${perMsg.map(([k, v]) => `\`${k}\` ${fmt(v, 3)}`).join(', ')}.`);
    md.push(`- Commands sent by clients per message (Lua internals excluded): ${fmt(sent, 2)}. INFO commandstats counts the commands a script runs as well, which is why its figure above is higher.`);
    md.push(`- Below 0.05 per message, as a rate (background: worker sweeps and schedulers, presence): ${background.map(([k, v]) => `\`${k}\` ${fmt(v, 1)}/s`).join(', ') || 'none'}. No adapter request/response publish (fetchSockets, serverSideEmit, socketsJoin) and no BullMQ command scales with messages.`);
  }
  md.push('');

  md.push('## Latency (fan-out 10)', '', '| offered | variant | send→receive p50 / p95 / p99 | ack p50 / p95 / p99 | deliveries/s |', '|---|---|---|---|---|');
  for (const share of [0.5, 0.8]) {
    for (const variant of ['FULL', 'BARE'] as const) {
      const list = lat(variant, share);
      if (!list.length) continue;
      md.push(`| ${share * 100}% of FULL max (${fmtInt(input.fullMaxMsgs * share)} msg/s) | ${variant} | ${ms3(list.map((r) => r.lg.latency.p50))} / ${ms3(list.map((r) => r.lg.latency.p95), 1)} / ${ms3(list.map((r) => r.lg.latency.p99), 1)} ms | ${ms3(list.map((r) => r.lg.ack.p50))} / ${ms3(list.map((r) => r.lg.ack.p95), 1)} / ${ms3(list.map((r) => r.lg.ack.p99), 1)} ms | ${ms3(list.map((r) => r.lg.deliveriesPerSec), 0)} |`);
    }
  }
  md.push('');

  md.push('## Idle connections', '');
  for (const variant of ['FULL', 'BARE'] as const) {
    const v = idle[variant];
    if (v) md.push(`- ${variant}: ${fmtInt(v.n)} connections over two processes (connected in ${fmt(v.connectMs / 1000, 1)} s): RSS ${fmt(v.rssPerConn / 1024, 1)} KiB and V8 heap ${fmt(v.heapPerConn / 1024, 1)} KiB per connection (after a full GC, via the inspector).`);
  }
  if (input.idleN < 10_000) md.push(`- ${fmtInt(input.idleN)} connections, not 10k: ${input.quick ? 'quick mode' : `the open-files limit (${m.ulimitBoth}) leaves no room for more`}.`);
  md.push('');

  md.push('## History page (`GET /api/rooms/:id/messages?limit=50`, keep-alive, sequential, measured at the client)', '');
  if (Number.isFinite(input.historyInsertMs)) md.push(`Rows inserted with one \`INSERT … SELECT generate_series\` in ${fmt(input.historyInsertMs / 1000, 1)} s, then ANALYZE.`, '');
  md.push('| case | p50 | p95 | p99 |', '|---|---|---|---|');
  for (const h of history) md.push(`| ${h.label} | ${ms(h.p.p50)} | ${ms(h.p.p95)} | ${ms(h.p.p99)} |`);
  md.push('');

  if (input.profile) {
    md.push(`## Profile: gateway-0 at saturation (fan-out 10, ${fmt(input.profile.totalMs / 1000, 1)} s, inspector CPU profile, self time)`, '');
    md.push('| area | self % |', '|---|---|');
    for (const a of input.profile.byArea) md.push(`| ${a.area} | ${fmt(a.selfPct, 1)} |`);
    md.push('', '| function | where | self % |', '|---|---|---|');
    for (const f of input.profile.top) md.push(`| \`${f.name}\` | ${f.where} | ${fmt(f.selfPct, 1)} |`);
    md.push('');
  }

  md.push('## All steps', '', '| variant | fan-out | round | offered msg/s | acked msg/s | deliveries/s | p50 / p99 ms | server CPU % | redis % | postgres % | loadgen % |', '|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of input.records) {
    md.push(`| ${r.variant} | ${r.fanout} | ${r.round} | ${fmtInt(r.rate)} | ${fmtInt(r.lg.ackedPerSec)} | ${fmtInt(r.lg.deliveriesPerSec)} | ${fmt(r.lg.latency.p50, 2)} / ${fmt(r.lg.latency.p99, 1)} | ${fmt(r.cpuPerSec[SERVER_ROLE[r.variant]] / 1e4, 0)} | ${r.variant === 'BARE' ? '—' : fmt(r.cpuPerSec.redis / 1e4, 0)} | ${r.variant === 'FULL' ? fmt(r.cpuPerSec.postgres / 1e4, 0) : '—'} | ${fmt(r.cpuPerSec.loadgen / 1e4, 0)} |`);
  }
  md.push('');
  md.push(ANALYSIS_MARKER, '');
  return { table, markdown: md.join('\n') };
}

/** Analysis written by hand below this line survives regeneration (see keepAnalysis). */
const ANALYSIS_MARKER = '<!-- analysis: kept across runs -->';

/** Regenerates everything above the marker and keeps what was written below it. */
function keepAnalysis(path: string, generated: string): string {
  let previous = '';
  try {
    previous = readFileSync(path, 'utf8');
  } catch {
    return generated;
  }
  const at = previous.indexOf(ANALYSIS_MARKER);
  return at >= 0 ? generated.replace(ANALYSIS_MARKER, previous.slice(at)) : generated;
}

await main().catch(async (error: unknown) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  await stopAll();
  process.exit(1);
});
