/**
 * `pnpm bench`: FULL (the gateways + the worker, private database, private Redis) against
 * ADAPTER (two plain Socket.IO processes joined by the Redis adapter, rooms spanning both: the
 * cluster design with none of the gateway's work), in one run, variants taking turns:
 *
 * 1. saturation: FULL and ADAPTER climb a ladder of offered rates at fan-out 10;
 * 2. fixed loads: FULL, ADAPTER and BARE (plain Socket.IO, for reference) at 20% and 50% of
 *    ADAPTER's saturation, taking turns;
 * 3. a Redis audit, and a CPU profile of a gateway, at those loads;
 * 4. a hot room: one room's senders on 2 and on 4 gateways at the same offered rate;
 * 5. memory per idle connection; 6. history pages at 1M messages against `/livez`;
 * 7. purging a day of 1M messages by dropping its partition (issue 17, point 3).
 *
 * Prints issue 17's target table and writes BENCHMARKS.md (text below its analysis marker is
 * kept). `--quick` for a smoke run (about 3 minutes). Everything on 127.0.0.1; every loop bounded.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import postgres from 'postgres';
import { freePort } from '@chat/testing/ports';
import type { StepResult } from './lib/driver.ts';
import type { LoadgenSpec } from './loadgen.ts';
import { LoadgenClient, type LoadgenCommand } from './lib/loadgen-client.ts';
import { Inspector, summariseProfile, type CpuProfile, type ProfileSummary } from './lib/cdp.ts';
import { describeMachine } from './lib/machine.ts';
import { startCountingProxy } from './lib/pg-proxy.ts';
import { fillAndDropDay, ROWS_PER_ROOM, type PartitionDrop } from './lib/purge-day.ts';
import { auditRedis, type RedisAudit } from './lib/redis-audit.ts';
import { cleanUpOnSignal, ROOT, sleep, startRedis, startBenchGateway, startNode, stopAll, waitHttpOk, type BenchGateway } from './lib/procs.ts';
import { ADMIN_URL, BenchDatabase } from './lib/bench-database.ts';
import { keepAnalysis } from './lib/kept-analysis.ts';
import { buildReport, ROLES, serverCpuPerSec, type HistoryCase, type IdleFigures, type Role, type StepRecord, type Variant } from './lib/report.ts';
import { cpuPressureMicros, taskRunQueueMicros } from './lib/task-cpu.ts';
import { cpuMicros, cpuSplitMicros, fmt, fmtInt, median, percentiles, rssBytes, type Percentiles } from './lib/stats.ts';

// ---------------------------------------------------------------------------------------------
// Settings
const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const outArg = argv.indexOf('--out');
const outPath = outArg >= 0 && argv[outArg + 1] ? argv[outArg + 1]! : quick ? join(tmpdir(), 'BENCHMARKS.quick.md') : join(ROOT, 'BENCHMARKS.md');

const S = quick
  ? {
      rounds: 1,
      warmupMs: 600,
      windowMs: 1500,
      fixedWindowMs: 2000,
      settleMs: 300,
      ladder: [2000, 4000, 6000, 9000, 13_000, 18_000],
      rooms: 40,
      hotRate: 500,
      hotMembers: 20,
      idleConnections: 1000,
      historyRows: 100_000,
      historyRequests: 150,
      budgetMs: 3 * 60_000,
    }
  : {
      rounds: 3,
      warmupMs: 800,
      windowMs: 3000,
      fixedWindowMs: 4000,
      settleMs: 400,
      // Each variant climbs until it saturates (SATURATED_SHARE); the top rungs are for fast hosts.
      ladder: [2000, 3000, 4000, 5500, 7000, 9000, 12_000, 15_000, 19_000],
      rooms: 60,
      hotRate: 1000,
      hotMembers: 20,
      idleConnections: 10_000,
      historyRows: 1_000_000,
      historyRequests: 1500,
      budgetMs: 14 * 60_000,
    };
const FANOUT = 10;
/** The fixed loads, as shares of ADAPTER's saturation (acknowledged messages/s). */
const SHARES = [0.2, 0.5] as const;
/** Sends are skipped while this many acks are outstanding (at fixed loads it never binds). */
const MAX_OUTSTANDING = 300;
/**
 * In the saturation climb, a wider window: with 300, a variant whose acks wait for a durable
 * commit stopped at 300 ÷ its ack latency (about 1,500 msg/s when a loaded host stretched
 * commits to tens of ms) with CPU to spare, measuring the client's window, not the server.
 */
const SATURATION_OUTSTANDING = 1200;
/** A step that acknowledges less than this share of its offered rate has saturated its variant. */
const SATURATED_SHARE = 0.95;
const started = Date.now();
/** Each phase may start only before its share of the time budget is spent. */
const overBudget = (share = 1) => Date.now() - started > S.budgetMs * share;
const log = (line: string) => process.stdout.write(`[bench ${((Date.now() - started) / 1000).toFixed(0).padStart(4)}s] ${line}\n`);

let loadgen: LoadgenClient | null = null;
function lg<T>(command: LoadgenCommand, timeoutMs?: number): Promise<T> {
  return loadgen ? loadgen.request<T>(command, timeoutMs) : Promise.reject(new Error('no loadgen'));
}
type Opened = { connected: number; failed: number; ms: number; firstError: string | null };

interface Snap {
  t: number;
  cpu: Record<Role, number>;
  sys: Record<Role, number>;
  /** Microseconds each role's threads have waited on the run queue so far. */
  runQueue: Record<Role, number>;
  /** /proc/pressure/cpu `some` total so far (NaN without PSI). */
  pressure: number;
  redis: Record<string, number>;
  roundTrips: number;
  commits: number;
  metrics: GatewayMetrics;
}
interface GatewayMetrics {
  persisted: number;
  batches: number;
  batchSeconds: number;
  batchMessages: number;
}
const NO_METRICS: GatewayMetrics = { persisted: 0, batches: 0, batchSeconds: 0, batchMessages: 0 };

// ---------------------------------------------------------------------------------------------
async function main() {
  const secret = randomBytes(24).toString('hex');
  const benchDb = BenchDatabase.fresh('bench');
  const dbName = benchDb.name;
  const dbUrl = benchDb.url;
  // Step 7's partition purge runs in a database of its own (see there).
  const purgeDb = new BenchDatabase(`${benchDb.name}_purge`);
  const machine = describeMachine();
  log(`machine: ${machine.cpu}, ${machine.nproc} cores, ${machine.memGiB} GiB; ${quick ? 'QUICK' : 'FULL'} mode; ulimit -n ${machine.ulimit}; load ${machine.loadavg}`);

  let admin: postgres.Sql | null = null;
  let sql: postgres.Sql | null = null;
  let redis: Redis | null = null;
  let proxyClose: (() => Promise<void>) | null = null;
  // The gateways run as they ship: `pnpm build`'s production bundle, started as the image starts
  // it (node --enable-source-maps dist/gateway.mjs), not the sources through tsx, whose
  // keepNames gives every function a handler creates a name property (CPU per call, and ~0.8 KiB
  // per idle connection).
  const bundleDir = mkdtempSync(join(tmpdir(), 'bench-dist-'));
  const cleanup = cleanUpOnSignal(async () => {
    await loadgen?.stop();
    await stopAll();
    redis?.disconnect();
    await proxyClose?.().catch(() => undefined);
    await sql?.end({ timeout: 2 }).catch(() => undefined);
    await admin?.end({ timeout: 2 }).catch(() => undefined);
    await benchDb.drop(log);
    await purgeDb.drop(log);
    rmSync(bundleDir, { recursive: true, force: true });
  }, log);

  try {
    // ---- services
    await benchDb.create();
    admin = postgres(ADMIN_URL, { max: 1, onnotice: () => {} });
    sql = postgres(dbUrl, { max: 4, onnotice: () => {} });
    const server = new URL(dbUrl);
    const proxy = await startCountingProxy({ host: server.hostname, port: Number(server.port || 5432) });
    proxyClose = proxy.close;
    const proxiedUrl = new URL(dbUrl);
    proxiedUrl.hostname = '127.0.0.1';
    proxiedUrl.port = String(proxy.port);

    const { proc: redisProc, port: redisPort, url: redisUrl } = await startRedis();
    redis = new Redis(redisUrl, { maxRetriesPerRequest: 1, retryStrategy: () => null });
    redis.on('error', () => undefined);
    const prefix = 'bench';
    const gatewayEnv = { databaseUrl: proxiedUrl.toString(), redisUrl, redisPrefix: prefix, jwtSecret: secret };

    execFileSync(process.execPath, ['--import', 'tsx', 'infra/build.ts'], {
      cwd: ROOT,
      env: { ...process.env, BUILD_OUT_DIR: bundleDir, BUILD_WITHOUT_WEB: '1' },
      stdio: 'ignore',
      timeout: 120_000,
    });
    const bundle = join(bundleDir, 'gateway.mjs');
    const startGateway = (name: string) => startBenchGateway(name, gatewayEnv, ['--enable-source-maps'], bundle);
    const gateways: BenchGateway[] = [];
    for (let i = 0; i < 2; i++) gateways.push(await startGateway(`bench-gateway-${i}`));
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
    const plain = async (name: string, env: Record<string, string>) => {
      const port = await freePort();
      const inspect = await freePort();
      const proc = startNode(name, 'test/bench/bare-server.ts', { PORT: String(port), NODE_ENV: 'production', ...env }, [`--inspect=127.0.0.1:${inspect}`]);
      return { proc, url: `http://127.0.0.1:${port}`, inspect };
    };
    const bares = [await plain('bare-0', {}), await plain('bare-1', {})];
    const adapterEnv = { REDIS_URL: redisUrl, REDIS_KEY: 'bench-adapter:socket.io' };
    const adapters = [await plain('adapter-0', adapterEnv), await plain('adapter-1', adapterEnv)];
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
    const pids: Record<Role, number[]> = {
      gateways: gateways.map((g) => g.proc.pid),
      extraGateways: [],
      extraAdapters: [],
      worker: [worker.pid],
      bare: bares.map((b) => b.proc.pid),
      adapter: adapters.map((b) => b.proc.pid),
      redis: [redisProc.pid],
      postgres: await pgPids(),
      loadgen: [loadgen.pid],
    };
    /** Every FULL gateway up now (the hot-room phase adds two). */
    const liveGateways: BenchGateway[] = [...gateways];

    const redisStats = async (): Promise<Record<string, number>> => {
      const info = await redis!.info('commandstats');
      const out: Record<string, number> = {};
      for (const match of info.matchAll(/cmdstat_([a-z|_-]+):calls=(\d+)/g)) out[match[1]!] = Number(match[2]);
      return out;
    };
    const gatewayMetrics = async (): Promise<GatewayMetrics> => {
      const sum = { ...NO_METRICS };
      const read = (text: string, name: string) => Number(new RegExp(`^${name} (\\S+)`, 'm').exec(text)?.[1] ?? 0);
      for (const g of liveGateways) {
        const text = await (await fetch(`${g.url}/metrics`)).text();
        sum.persisted += read(text, 'chat_messages_persisted_total');
        sum.batches += read(text, 'chat_persist_duration_seconds_count');
        sum.batchSeconds += read(text, 'chat_persist_duration_seconds_sum');
        sum.batchMessages += read(text, 'chat_persist_batch_size_sum');
      }
      return sum;
    };
    const snap = async (withFull: boolean): Promise<Snap> => {
      const t = performance.now();
      const cpu = {} as Record<Role, number>;
      const sys = {} as Record<Role, number>;
      const runQueue = {} as Record<Role, number>;
      for (const role of ROLES) {
        cpu[role] = pids[role].reduce((sum, pid) => sum + cpuMicros(pid), 0);
        sys[role] = pids[role].reduce((sum, pid) => sum + cpuSplitMicros(pid)[1], 0);
        runQueue[role] = pids[role].reduce((sum, pid) => sum + taskRunQueueMicros(pid), 0);
      }
      return { t, cpu, sys, runQueue, pressure: cpuPressureMicros(), redis: await redisStats(), roundTrips: proxy.roundTrips(), commits: proxy.commits(), metrics: withFull ? await gatewayMetrics() : NO_METRICS };
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
    const open = async (group: string, specs: LoadgenSpec[], concurrency = 50) => {
      const opened = await lg<Opened>({ cmd: 'open', group, namespace: '/socket', specs, concurrency });
      if (opened.failed) throw new Error(`${group}: ${opened.failed} clients failed: ${opened.firstError}`);
      return opened;
    };

    // Every room of FULL and ADAPTER has members on both processes (they alternate), as in a
    // cluster; BARE's rooms are each local to one process.
    const seeded = await seedRooms(S.rooms, FANOUT, 'u');
    const roomOf = (i: number) => Math.floor(i / FANOUT);
    await open('FULL', seeded.users.map((sub, i) => ({ url: gateways[i % 2]!.url, roomId: seeded.roomIds[roomOf(i)]!, sub })));
    await open('ADAPTER', seeded.users.map((_, i) => ({ url: adapters[i % 2]!.url, roomId: `adapter-${roomOf(i)}`, bareRoom: `adapter-${roomOf(i)}` })));
    await open('BARE', seeded.users.map((_, i) => ({ url: bares[roomOf(i) % 2]!.url, roomId: `bare-${roomOf(i)}`, bareRoom: `bare-${roomOf(i)}` })));
    log(`fan-out ${FANOUT}: ${S.rooms} rooms × ${FANOUT} members for each of FULL, ADAPTER and BARE`);

    /** Mean number of the bench database's backends waiting on a lock, sampled every 10 ms for `ms`. */
    const sampleLockWaits = async (ms: number) => {
      const until = performance.now() + ms;
      let samples = 0;
      let waiting = 0;
      while (performance.now() < until) {
        const [row] = await adminSql<{ n: number }[]>`
          select count(*)::int as n from pg_stat_activity where datname = ${dbName} and wait_event_type = 'Lock'`;
        samples++;
        waiting += row?.n ?? 0;
        await sleep(10);
      }
      return waiting / Math.max(1, samples);
    };
    /** A one-row durable commit, timed at the client: what every acknowledged send waits for at least. */
    const commitFloor = async (): Promise<Percentiles> => {
      await db`create table if not exists bench_commit_floor (x int)`;
      const times: number[] = [];
      for (let i = 0; i < 200; i++) {
        const t = performance.now();
        await db`insert into bench_commit_floor values (1)`;
        times.push(performance.now() - t);
      }
      await db`drop table bench_commit_floor`;
      return percentiles(times);
    };
    const floorAtStart = await commitFloor();
    log(`a one-row durable commit: p50 ${fmt(floorAtStart.p50, 2)} ms, p99 ${fmt(floorAtStart.p99, 2)} ms`);

    const step = async (
      variant: Variant,
      options: { phase: StepRecord['phase']; group?: string; round: number; rate: number; share?: number | null; windowMs?: number; sampleLocks?: boolean; maxOutstanding?: number },
    ): Promise<StepRecord> => {
      const group = options.group ?? variant;
      const full = variant === 'FULL';
      await lg({ cmd: 'start', group, rate: options.rate, maxOutstanding: options.maxOutstanding ?? MAX_OUTSTANDING });
      await sleep(S.warmupMs);
      if (full) pids.postgres = await pgPids();
      const a = await snap(full);
      await lg({ cmd: 'mark', group });
      const lockWaiting = options.sampleLocks ? await sampleLockWaits(options.windowMs ?? S.windowMs) : Number.NaN;
      if (!options.sampleLocks) await sleep(options.windowMs ?? S.windowMs);
      const result = await lg<StepResult>({ cmd: 'stop', group });
      const b = await snap(full);
      await sleep(S.settleMs);
      const seconds = (b.t - a.t) / 1000;
      const cpuPerSec = {} as Record<Role, number>;
      const sysPerSec = {} as Record<Role, number>;
      const runQueuePerSec = {} as Record<Role, number>;
      for (const role of ROLES) {
        cpuPerSec[role] = (b.cpu[role] - a.cpu[role]) / seconds;
        sysPerSec[role] = (b.sys[role] - a.sys[role]) / seconds;
        runQueuePerSec[role] = (b.runQueue[role] - a.runQueue[role]) / seconds;
      }
      const persisted = b.metrics.persisted - a.metrics.persisted;
      const batches = b.metrics.batches - a.metrics.batches;
      const redisDelta: [string, number][] = Object.entries(b.redis)
        .map(([name, calls]): [string, number] => [name, calls - (a.redis[name] ?? 0) - (name === 'info' ? 1 : 0)])
        .filter(([, calls]) => calls > 0);
      const redisCalls = redisDelta.reduce((sum, [, calls]) => sum + calls, 0);
      const counted = full && persisted > 0;
      return {
        phase: options.phase,
        variant,
        group,
        round: options.round,
        rate: options.rate,
        share: options.share ?? null,
        lg: result,
        seconds,
        cpuPerSec,
        sysPerSec,
        runQueuePerSec,
        cpuPressure: (b.pressure - a.pressure) / (seconds * 1e6),
        persistedPerSec: persisted / seconds,
        batchesPerSec: batches / seconds,
        batchMs: batches ? ((b.metrics.batchSeconds - a.metrics.batchSeconds) / batches) * 1000 : Number.NaN,
        batchSize: batches ? (b.metrics.batchMessages - a.metrics.batchMessages) / batches : Number.NaN,
        dbRoundTripsPerMsg: counted ? (b.roundTrips - a.roundTrips) / persisted : Number.NaN,
        txPerMsg: counted ? (b.commits - a.commits) / persisted : Number.NaN,
        redisPerMsg: counted ? redisCalls / persisted : Number.NaN,
        redisTop: counted ? redisDelta.sort((x, y) => y[1] - x[1]).slice(0, 6).map(([n, c]): [string, number] => [n, c / persisted]) : [],
        lockWaiting,
      };
    };
    const describe = (r: StepRecord) =>
      `${r.phase} ${r.group} r${r.round} offered ${fmtInt(r.rate)}/s: acked ${fmtInt(r.lg.ackedPerSec)}/s, deliveries ${fmtInt(r.lg.deliveriesPerSec)}/s, ` +
      `p50/p99 ${fmt(r.lg.latency.p50, 2)}/${fmt(r.lg.latency.p99, 1)} ms, cpu ${fmt(serverCpuPerSec(r) / 1e4, 0)}%` +
      (r.variant === 'ADAPTER' ? ` (+redis ${fmt(r.cpuPerSec.redis / 1e4, 0)}%)` : '') +
      (r.variant === 'FULL'
        ? ` (+redis ${fmt(r.cpuPerSec.redis / 1e4, 0)}% pg ${fmt(r.cpuPerSec.postgres / 1e4, 0)}%), batches ${fmt(r.batchesPerSec, 0)}/s × ${fmt(r.batchSize, 1)} in ${fmt(r.batchMs, 2)} ms, rt/msg ${fmt(r.dbRoundTripsPerMsg, 3)}, redis/msg ${fmt(r.redisPerMsg, 2)}`
        : '') +
      `, loadgen ${fmt(r.cpuPerSec.loadgen / 1e4, 0)}%` +
      (Number.isFinite(r.lockWaiting) ? `, backends waiting on a lock ${fmt(r.lockWaiting, 2)}` : '') +
      (r.lg.ackFailed ? `, ack failures ${r.lg.ackFailed} ${JSON.stringify(r.lg.errors)}` : '');
    const records: StepRecord[] = [];
    const record = (r: StepRecord) => {
      records.push(r);
      log(describe(r));
      return r;
    };

    // ---- 1. saturation: FULL and ADAPTER climb, taking turns at each offered rate
    /** Variants (by round) that were still keeping up at the top offered rate. */
    const unsaturated: string[] = [];
    const climbers: Variant[] = ['FULL', 'ADAPTER'];
    for (let round = 1; round <= S.rounds && !overBudget(0.3); round++) {
      // A variant stops climbing once a step both falls behind its offered rate and adds no
      // throughput (under 3% more deliveries than its best so far); the other goes on alone.
      const saturated = new Set<Variant>();
      const best: Record<Variant, number> = { FULL: 0, ADAPTER: 0, BARE: 0 };
      for (const [index, rate] of S.ladder.entries()) {
        const order = (round + index) % 2 ? [...climbers].reverse() : climbers;
        const climbing = order.filter((variant) => !saturated.has(variant));
        if (climbing.length === 0) break;
        for (const variant of climbing) {
          const r = record(await step(variant, { phase: 'saturation', round, rate, maxOutstanding: SATURATION_OUTSTANDING }));
          if (r.lg.ackedPerSec < SATURATED_SHARE * rate && r.lg.deliveriesPerSec < 1.03 * best[variant]) saturated.add(variant);
          best[variant] = Math.max(best[variant], r.lg.deliveriesPerSec);
        }
      }
      for (const variant of climbers) if (!saturated.has(variant)) unsaturated.push(`${variant} round ${round}`);
    }
    const saturation = (variant: Variant) => {
      const out: StepRecord[] = [];
      for (let round = 1; round <= S.rounds; round++) {
        const steps = records.filter((r) => r.phase === 'saturation' && r.variant === variant && r.round === round);
        const top = steps.sort((x, y) => y.lg.deliveriesPerSec - x.lg.deliveriesPerSec)[0];
        if (top) out.push(top);
      }
      return out;
    };
    const sat = { full: saturation('FULL'), adapter: saturation('ADAPTER') };
    const adapterMaxMsgs = Math.max(200, median(sat.adapter.map((r) => r.lg.ackedPerSec)));
    log(`ADAPTER saturates at ${fmtInt(adapterMaxMsgs)} msg/s (median over rounds); FULL at ${fmtInt(median(sat.full.map((r) => r.lg.ackedPerSec)))}`);

    // ---- 2. fixed loads: 20% and 50% of ADAPTER's saturation, FULL / ADAPTER / BARE taking turns
    const fixedVariants: Variant[] = ['FULL', 'ADAPTER', 'BARE'];
    for (let round = 1; round <= S.rounds && !overBudget(0.5); round++) {
      for (const share of SHARES) {
        const turn = (round + SHARES.indexOf(share)) % fixedVariants.length;
        for (const variant of [...fixedVariants.slice(turn), ...fixedVariants.slice(0, turn)]) {
          record(await step(variant, { phase: 'fixed', round, rate: Math.round(adapterMaxMsgs * share), share, windowMs: S.fixedWindowMs }));
        }
      }
    }

    // ---- 3. what each message costs in Redis (MONITOR), and where a gateway spends its CPU
    let audit: RedisAudit | null = null;
    if (!overBudget(0.55)) {
      const rate = Math.round(adapterMaxMsgs * 0.2);
      audit = await auditRedis(redisPort, prefix, async () => {
        await lg({ cmd: 'start', group: 'FULL', rate, maxOutstanding: MAX_OUTSTANDING });
        await lg({ cmd: 'mark', group: 'FULL' });
        await sleep(2000);
        const result = await lg<StepResult>({ cmd: 'stop', group: 'FULL' });
        return result.sent - result.ackFailed;
      });
      log(`audit: ${audit.messages} messages in ${fmt(audit.seconds, 1)} s; per message: ${Object.entries(audit.perMessage).map(([k, v]) => `${k} ${fmt(v, 3)}`).join(', ')}`);
    }
    let profile: (ProfileSummary & { rate: number }) | null = null;
    if (!overBudget(0.57)) {
      const rate = Math.round(adapterMaxMsgs * 0.5);
      const inspector = await Inspector.attach(gateways[0]!.inspect);
      await lg({ cmd: 'start', group: 'FULL', rate, maxOutstanding: MAX_OUTSTANDING });
      await sleep(800);
      await inspector.send('Profiler.enable');
      await inspector.send('Profiler.setSamplingInterval', { interval: 500 });
      await inspector.send('Profiler.start');
      await sleep(quick ? 2000 : 4000);
      const { profile: raw } = await inspector.send<{ profile: CpuProfile }>('Profiler.stop');
      await lg<StepResult>({ cmd: 'stop', group: 'FULL' });
      inspector.close();
      const file = join(tmpdir(), `bench-gateway-${Date.now()}.cpuprofile`);
      writeFileSync(file, JSON.stringify(raw));
      profile = { ...summariseProfile(raw), rate };
      log(`profile of gateway-0 at 50% load written to ${file}`);
    }
    for (const group of ['FULL', 'ADAPTER', 'BARE']) await lg({ cmd: 'close', group });

    // ---- 4. a hot room: senders on 2 and on 4 processes, same offered rate, taking turns;
    // FULL's gateways and, for the cluster design alone, ADAPTER's processes
    if (!overBudget(0.62)) {
      const extra: BenchGateway[] = [];
      for (let i = 2; i < 4; i++) extra.push(await startGateway(`bench-gateway-${i}`));
      const extraAdapters = [await plain('adapter-2', adapterEnv), await plain('adapter-3', adapterEnv)];
      await Promise.all([
        ...extra.map((g) => waitHttpOk(g.proc, `${g.url}/readyz`, 120_000)),
        ...extraAdapters.map((b) => waitHttpOk(b.proc, `${b.url}/healthz`, 120_000)),
      ]);
      liveGateways.push(...extra);
      pids.extraGateways = extra.map((g) => g.proc.pid);
      pids.extraAdapters = extraAdapters.map((b) => b.proc.pid);
      const all = [...gateways, ...extra];
      const allAdapters = [...adapters, ...extraAdapters];
      // Two rooms per variant, so that neither group's members receive the other's messages;
      // each one is the only room its group writes to.
      const hot = await seedRooms(2, S.hotMembers, 'hot');
      for (const pods of [2, 4]) {
        const room = pods === 2 ? 0 : 1;
        const users = hot.users.slice(room * S.hotMembers, (room + 1) * S.hotMembers);
        await open(`HOT-${pods}`, users.map((sub, i) => ({ url: all[i % pods]!.url, roomId: hot.roomIds[room]!, sub })));
        const adapterRoom = `adapter-hot-${pods}`;
        await open(`AHOT-${pods}`, users.map((_, i) => ({ url: allAdapters[i % pods]!.url, roomId: adapterRoom, bareRoom: adapterRoom })));
      }
      log(`hot room: ${S.hotMembers} members, all sending, spread over 2 or over 4 processes (FULL and ADAPTER); ${fmtInt(S.hotRate)} msg/s offered`);
      const groups = [
        { group: 'HOT-2', variant: 'FULL' },
        { group: 'AHOT-2', variant: 'ADAPTER' },
        { group: 'HOT-4', variant: 'FULL' },
        { group: 'AHOT-4', variant: 'ADAPTER' },
      ] as const;
      // The new processes start cold (no JIT-compiled code yet) where the first two have run for
      // minutes: every group sends, unmeasured, before the rounds.
      for (const { group } of groups) {
        await lg({ cmd: 'start', group, rate: S.hotRate, maxOutstanding: MAX_OUTSTANDING });
        await sleep(quick ? 1500 : 4000);
        await lg<StepResult>({ cmd: 'stop', group });
      }
      for (let round = 1; round <= S.rounds && !overBudget(0.72); round++) {
        // Rotated each round, so that no group always follows the same one.
        const order = groups.map((_, i) => groups[(i + round) % groups.length]!);
        for (const { group, variant } of order) {
          record(await step(variant, { phase: 'hot', group, round, rate: S.hotRate, windowMs: S.fixedWindowMs, sampleLocks: variant === 'FULL' }));
        }
      }
      for (const { group } of groups) await lg({ cmd: 'close', group });
      for (const g of extra) await g.proc.stop();
      for (const b of extraAdapters) await b.proc.stop();
      liveGateways.splice(2);
      pids.extraGateways = [];
      pids.extraAdapters = [];
    }
    await sleep(1000);

    // ---- 5. memory per idle connection
    const idle: Partial<Record<'FULL' | 'BARE', IdleFigures>> = {};
    const softLimit = Number(machine.ulimit) || 1024;
    const idleN = Math.min(S.idleConnections, softLimit - 2000);
    if (!overBudget(0.8)) {
      const ids = (await db<{ id: string }[]>`insert into users (id, nickname) select gen_random_uuid(), 'idle' || g from generate_series(1, ${idleN}) g returning id`).map((r) => r.id);
      for (const variant of ['FULL', 'BARE'] as const) {
        const targets = variant === 'FULL' ? gateways : bares;
        const inspectors = await Promise.all(targets.map((t) => Inspector.attach(t.inspect)));
        const before = await Promise.all(inspectors.map((i) => i.memoryAfterGc()));
        const rssBefore = targets.reduce((sum, t) => sum + rssBytes(t.proc.pid), 0);
        const specs: LoadgenSpec[] = ids.map((sub, i) => (variant === 'FULL' ? { url: targets[i % 2]!.url, roomId: null, sub } : { url: targets[i % 2]!.url, roomId: null, bareRoom: null }));
        const opened = await lg<Opened>({ cmd: 'open', group: `idle-${variant}`, namespace: '/socket', specs, concurrency: 100, deadlineMs: quick ? 15_000 : 75_000 }, 180_000);
        await sleep(2000);
        const after = await Promise.all(inspectors.map((i) => i.memoryAfterGc()));
        const rssAfter = targets.reduce((sum, t) => sum + rssBytes(t.proc.pid), 0);
        const heapDelta = after.reduce((s, m) => s + m.heapUsed, 0) - before.reduce((s, m) => s + m.heapUsed, 0);
        const figures = { n: opened.connected, rssPerConn: (rssAfter - rssBefore) / opened.connected, heapPerConn: heapDelta / opened.connected, connectMs: opened.ms };
        idle[variant] = figures;
        log(`idle ${variant}: ${opened.connected} connected (${opened.failed} failed${opened.firstError ? `: ${opened.firstError}` : ''}) in ${fmt(opened.ms / 1000, 1)} s; RSS ${fmt(figures.rssPerConn / 1024, 1)} KiB/conn, heap ${fmt(figures.heapPerConn / 1024, 1)} KiB/conn`);
        await lg({ cmd: 'close', group: `idle-${variant}` });
        for (const i of inspectors) i.close();
        await sleep(1500);
      }
    }

    // ---- 6. history pages at depth 0 and deep in a room of historyRows messages, each request
    // alternating with one to /livez on the same keep-alive connection: the machine's own floor,
    // measured under the same noise.
    const history: HistoryCase[] = [];
    let historyInsertMs = Number.NaN;
    if (!overBudget(0.9)) {
      const small = await seedRooms(1, 1, 'hs');
      const big = await seedRooms(1, 1, 'hb');
      const insertRows = async (roomId: string, userId: string, n: number) => {
        await db`insert into messages (id, room_id, user_id, type, content, seq, created_at, expires_at)
          select gen_random_uuid(), ${roomId}, ${userId}, 'text', 'history message ' || g, g,
                 now() - (${n} - g) * interval '1 millisecond', r.expires_at
          from generate_series(1, ${n}) g, rooms r where r.id = ${roomId}`;
        await db`update rooms set last_seq = ${n} where id = ${roomId}`;
      };
      await insertRows(small.roomIds[0]!, small.users[0]!, 60);
      const t0 = performance.now();
      await insertRows(big.roomIds[0]!, big.users[0]!, S.historyRows);
      historyInsertMs = performance.now() - t0;
      // VACUUM too, as autovacuum would have long since done on a day's table: otherwise it starts
      // on the million fresh rows in the middle of the timed pages (and their first reads set
      // hint bits), which a table in service does not see.
      await db`vacuum analyze messages`;
      log(`history: ${fmtInt(S.historyRows)} messages inserted with one INSERT … SELECT generate_series in ${fmt(historyInsertMs / 1000, 1)} s`);
      const idAt = async (roomId: string, seq: number) => (await db<{ id: string }[]>`select id from messages where room_id = ${roomId} and seq = ${seq}`)[0]!.id;
      const mid = await idAt(big.roomIds[0]!, Math.floor(S.historyRows / 2));
      const deep = await idAt(big.roomIds[0]!, 100);
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      const base = gateways[0]!.url;
      const cases = [
        { label: 'small room (60 messages), newest page', big: false, path: `/api/rooms/${small.roomIds[0]}/messages?limit=50` },
        { label: `${fmtInt(S.historyRows)} messages, newest page (depth 0)`, big: true, path: `/api/rooms/${big.roomIds[0]}/messages?limit=50` },
        { label: `${fmtInt(S.historyRows)} messages, before the middle (depth ${fmtInt(S.historyRows / 2)})`, big: true, path: `/api/rooms/${big.roomIds[0]}/messages?limit=50&before=${mid}` },
        { label: `${fmtInt(S.historyRows)} messages, before seq 100 (depth ${fmtInt(S.historyRows - 100)})`, big: true, path: `/api/rooms/${big.roomIds[0]}/messages?limit=50&before=${deep}` },
      ];
      const timed = async (path: string) => {
        const t = performance.now();
        const status = await httpGet(agent, `${base}${path}`);
        if (status !== 200) throw new Error(`GET ${path}: HTTP ${status}`);
        return performance.now() - t;
      };
      for (const c of cases) {
        const pages: number[] = [];
        const livez: number[] = [];
        for (let i = 0; i < S.historyRequests + 30; i++) {
          const page = await timed(c.path);
          const floor = await timed('/livez');
          if (i >= 30) {
            pages.push(page);
            livez.push(floor);
          }
        }
        const p = percentiles(pages);
        const floor = percentiles(livez);
        history.push({ label: c.label, big: c.big, p, livez: floor });
        log(`history ${c.label}: p50 ${fmt(p.p50, 2)} ms, p99 ${fmt(p.p99, 2)} ms; /livez p50 ${fmt(floor.p50, 2)}, p99 ${fmt(floor.p99, 2)} ms`);
      }
      agent.destroy();
    }

    // ---- 7. a day of historyRows messages purged as the worker's partition job purges one, in
    // a throw-away database of its own: this run's worker would drop an expired day by itself.
    let purge: PartitionDrop | null = null;
    if (!overBudget(0.95)) {
      await purgeDb.create();
      const purgeSql = postgres(purgeDb.url, { max: 1, onnotice: () => {} });
      try {
        const userId = randomUUID();
        await purgeSql`insert into users (id, nickname) values (${userId}, 'bench')`;
        const [past] = await purgeSql<{ day: string }[]>`select to_char((now() at time zone 'UTC')::date - 3, 'YYYY-MM-DD') as day`;
        purge = await fillAndDropDay(purgeSql, userId, past!.day, Math.ceil(S.historyRows / ROWS_PER_ROOM));
        log(`purge: ${fmtInt(purge.rows)} messages of one day written in ${fmt(purge.writeMs / 1000, 1)} s, dropped in ${fmt(purge.dropMs / 1000, 3)} s; messages ${fmt(purge.bytesBefore / 2 ** 20, 1)} MiB before, ${fmt(purge.bytesAfter / 2 ** 20, 1)} MiB after`);
      } finally {
        await purgeSql.end({ timeout: 2 });
        await purgeDb.drop(log);
      }
    }

    // ---- report
    const floorAtEnd = await commitFloor();
    log(`a one-row durable commit at the end: p50 ${fmt(floorAtEnd.p50, 2)} ms, p99 ${fmt(floorAtEnd.p99, 2)} ms`);
    const report = buildReport({
      commitFloor: [floorAtStart, floorAtEnd],
      machine,
      loadAtEnd: describeMachine().loadavg,
      quick,
      settings: { ...S, shares: [...SHARES], fanout: FANOUT, maxOutstanding: MAX_OUTSTANDING, saturationOutstanding: SATURATION_OUTSTANDING, saturatedShare: SATURATED_SHARE },
      records,
      sat,
      adapterMaxMsgs,
      audit,
      profile,
      idle,
      idleN,
      history,
      historyInsertMs,
      purge,
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

await main().catch(async (error: unknown) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  await stopAll();
  process.exit(1);
});
