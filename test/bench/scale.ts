/**
 * `pnpm bench:scale` (issue 16 point 6): what adding gateway pods costs, classic
 * `@socket.io/redis-adapter` against the sharded adapter (`BUS_ADAPTER`), in one run.
 *
 * A fixed message rate (fan-out 10) goes into rooms whose members sit on pods 0 and 1; N = 2,
 * 4, 8 gateway pods run, the extra ones holding idle sockets in other rooms (bystanders). Each
 * variant has its own private redis-server, so Redis's CPU and output bytes are its alone. At
 * each N the variants take turns (order rotating), then: 50 joins/s while sending, and a hot
 * room with members on all N pods. Prints the targets table and writes docs/benchmarks-scale.md
 * (`pnpm bench` regenerates BENCHMARKS.md, which links to it from its kept part).
 *
 * `--quick` for development (about 2 minutes), `--cluster-bus` for a third cluster (sharded, its
 * bus on a private three-master Redis Cluster), `--out FILE` to write elsewhere, `--from-raw FILE`
 * to rebuild the report from the figures a run left in the temporary directory. Everything on
 * 127.0.0.1; every loop bounded in count and time.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import postgres from 'postgres';
import { startRedisCluster, type LocalRedisCluster } from '@chat/testing/redis-cluster';
import { BenchDatabase } from './lib/bench-database.ts';
import type { StepResult } from './lib/driver.ts';
import { JoinDriver, type Joiner } from './lib/join-driver.ts';
import { signHs256 } from './lib/jwt.ts';
import { LoadgenClient, type LoadgenCommand } from './lib/loadgen-client.ts';
import { cleanUpOnSignal, ROOT, sleep, startRedis, stopAll } from './lib/procs.ts';
import { readRedisCounters, type RedisCounters } from './lib/redis-info.ts';
import { keepAnalysis } from './lib/kept-analysis.ts';
import { buildScaleReport, linkFromBenchmarks, type HotRecord, type IdleRecord, type JoinRecord, type ScaleReportInput, type SendRecord, type Variant } from './lib/scale-report.ts';
import { startPod, type BusAdapter, type Pod } from './lib/scale-pods.ts';
import { seedRooms, seedUsers } from './lib/scale-seed.ts';
import { bytesRead, taskCpuMicros } from './lib/task-cpu.ts';
import type { LoadgenSpec } from './loadgen.ts';
import { checkArgs } from './lib/args.ts';

// ---------------------------------------------------------------------------------------------
// Settings
const USAGE = `usage: pnpm bench:scale [--quick] [--cluster-bus] [--out FILE] [--from-raw FILE]
  writes docs/benchmarks-scale.md (about 8 min; --quick about 3, into the temporary directory)
  (see the header of test/bench/scale.ts)`;
const argv = checkArgs('bench:scale', USAGE, { values: { out: 'string', 'from-raw': 'string' }, flags: ['quick', 'cluster-bus'] });
const quick = argv.includes('--quick');
const outArg = argv.indexOf('--out');
const outPath = outArg >= 0 && argv[outArg + 1] ? argv[outArg + 1]! : quick ? join(tmpdir(), 'benchmarks-scale.quick.md') : join(ROOT, 'docs/benchmarks-scale.md');
const NAMESPACE = '/socket';
/** `--cluster-bus` adds the sharded adapter on a private three-master Redis Cluster bus. */
const withClusterBus = argv.includes('--cluster-bus');
const VARIANTS: readonly Variant[] = withClusterBus ? ['classic', 'sharded', 'sharded-cluster'] : ['classic', 'sharded'];
const ADAPTER: Record<Variant, BusAdapter> = { classic: 'classic', sharded: 'sharded', 'sharded-cluster': 'sharded' };

const S = quick
  ? {
      /** Pod counts in the order measured; the last N = 2 (full mode) checks for drift. */
      podCounts: [2, 4, 8],
      rounds: 1,
      rate: 1000,
      rooms: 30,
      idleRoomsPerPod: 6,
      warmupMs: 700,
      windowMs: 2500,
      settleMs: 300,
      firstWarmupMs: 6000,
      idleSettleMs: 800,
      idleWindowMs: 1500,
      joinRate: 50,
      joinWindowMs: 2500,
      hotRate: 150,
      hotWarmupMs: 1500,
      hotWindowMs: 2000,
      budgetMs: 3 * 60_000,
    }
  : {
      podCounts: [2, 4, 8, 2],
      rounds: 3,
      // The issue measured at 2,000; on a machine shared with other work the two member pods
      // fell behind at that rate, and a window that falls behind batches its Redis commands
      // differently (per-message figures then compare badly across N).
      rate: 1500,
      rooms: 60,
      idleRoomsPerPod: 10,
      warmupMs: 1000,
      windowMs: 5000,
      settleMs: 400,
      firstWarmupMs: 10_000,
      idleSettleMs: 1000,
      idleWindowMs: 3000,
      joinRate: 50,
      joinWindowMs: 5000,
      hotRate: 200,
      hotWarmupMs: 2500,
      hotWindowMs: 4000,
      budgetMs: 10 * 60_000,
    };
const FANOUT = 10;
const IDLE_MEMBERS_PER_ROOM = 5;
const HOT_MEMBERS = 16;
const JOINERS = 20;
const JOIN_ROOMS = 200;
const MAX_PODS = Math.max(...S.podCounts);
const MAX_OUTSTANDING = 300;
const started = Date.now();
const elapsed = () => Date.now() - started;
const log = (line: string) => process.stdout.write(`[scale ${(elapsed() / 1000).toFixed(0).padStart(4)}s] ${line}\n`);

// ---------------------------------------------------------------------------------------------
let loadgen: LoadgenClient | null = null;
function lg<T>(command: LoadgenCommand, timeoutMs?: number): Promise<T> {
  return loadgen ? loadgen.request<T>(command, timeoutMs) : Promise.reject(new Error('no loadgen'));
}
type Opened = { connected: number; failed: number; firstError: string | null };

/** Everything one variant runs on: its Redis, its pods, its users and rooms. */
interface Cluster {
  variant: Variant;
  redisUrl: string;
  redisPid: number;
  /** The state Redis (and the bus, unless `bus` is set). */
  redis: Redis;
  /** A Redis Cluster bus: its nodes' INFO adds to the state Redis's. */
  bus: { cluster: LocalRedisCluster; nodes: Redis[] } | null;
  pods: Pod[];
  /** Rooms with FANOUT members, alternating between pods 0 and 1. */
  rooms: { roomIds: string[]; members: string[][] };
  /** Per bystander pod index (2…): its idle rooms' members. */
  idle: Map<number, string[]>;
  hotRoom: string;
  hotMembers: string[];
  joins: JoinDriver | null;
  joiners: Joiner[];
}

interface Snap {
  t: number;
  pods: number[];
  podBytesRead: number[];
  redis: RedisCounters & { replyBytes: number };
}

async function snap(cluster: Cluster): Promise<Snap> {
  const t = performance.now();
  const pods = cluster.pods.map((pod) => taskCpuMicros(pod.proc.pid));
  const podBytesRead = cluster.pods.map((pod) => bytesRead(pod.proc.pid));
  return { t, pods, podBytesRead, redis: await readAllRedis(cluster) };
}

/** The state Redis's counters, plus every bus node's on a Redis Cluster bus. */
async function readAllRedis(cluster: Cluster): Promise<RedisCounters & { replyBytes: number }> {
  const all = await Promise.all([cluster.redis, ...(cluster.bus?.nodes ?? [])].map(readRedisCounters));
  const total = { ...all[0]! };
  for (const more of all.slice(1)) {
    for (const key of Object.keys(total) as (keyof typeof total)[]) total[key] += more[key];
  }
  return total;
}

interface Delta {
  seconds: number;
  /** CPU µs/s of each pod. */
  podCpu: number[];
  /** Bytes/s each pod read from its sockets (clients and Redis). */
  podRead: number[];
  redisCpu: number;
  /** Redis output bytes/s, the INFO reply taken out. */
  redisOut: number;
  redisIn: number;
  /** µs/s executing the adapter's pub/sub commands, and all other commands (INFO commandstats). */
  redisBusCommands: number;
  redisStateCommands: number;
}

function delta(a: Snap, b: Snap): Delta {
  const seconds = (b.t - a.t) / 1000;
  return {
    seconds,
    podCpu: b.pods.map((cpu, i) => (cpu - (a.pods[i] ?? cpu)) / seconds),
    podRead: b.podBytesRead.map((bytes, i) => (bytes - (a.podBytesRead[i] ?? bytes)) / seconds),
    redisCpu: (b.redis.cpuMicros - a.redis.cpuMicros) / seconds,
    redisOut: (b.redis.outputBytes - a.redis.outputBytes - a.redis.replyBytes) / seconds,
    redisIn: (b.redis.inputBytes - a.redis.inputBytes) / seconds,
    redisBusCommands: (b.redis.busCommandMicros - a.redis.busCommandMicros) / seconds,
    redisStateCommands: (b.redis.stateCommandMicros - a.redis.stateCommandMicros) / seconds,
  };
}

// ---------------------------------------------------------------------------------------------
async function main() {
  const secret = randomBytes(24).toString('hex');
  const db = BenchDatabase.fresh('scale');
  const machine = {
    cpu: cpus()[0]?.model ?? 'unknown',
    nproc: cpus().length,
    memGiB: (totalmem() / 2 ** 30).toFixed(1),
    loadAtStart: loadavg().map((x) => x.toFixed(2)).join(' '),
  };
  log(`machine: ${machine.cpu}, ${machine.nproc} cores; load average ${machine.loadAtStart}; ${quick ? 'QUICK' : 'FULL'} mode`);

  let sql: postgres.Sql | null = null;
  const clusters: Cluster[] = [];
  const busClusters: NonNullable<Cluster['bus']>[] = [];
  const cleanup = cleanUpOnSignal(async () => {
    for (const cluster of clusters) {
      cluster.joins?.close();
      cluster.redis.disconnect();
    }
    await loadgen?.stop();
    await stopAll();
    for (const bus of busClusters) {
      for (const node of bus.nodes) node.disconnect();
      await bus.cluster.close().catch(() => undefined);
    }
    await sql?.end({ timeout: 2 }).catch(() => undefined);
    await db.drop(log);
  }, log);

  try {
    // ---- services: one database, one private redis-server per variant
    await db.create();
    sql = postgres(db.url, { max: 4, onnotice: () => {} });
    for (const variant of VARIANTS) {
      const { proc, url: redisUrl } = await startRedis(`redis-${variant}`);
      const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1, retryStrategy: () => null });
      redis.on('error', () => undefined);
      let bus: Cluster['bus'] = null;
      if (variant === 'sharded-cluster') {
        const cluster = await startRedisCluster();
        const nodes = cluster.nodes.map((node) => new Redis(node.port, node.host, { maxRetriesPerRequest: 1, retryStrategy: () => null }));
        for (const node of nodes) node.on('error', () => undefined);
        bus = { cluster, nodes };
        busClusters.push(bus);
      }
      // ---- users and rooms of this variant, by SQL
      const rooms = await seedRooms(sql, S.rooms, FANOUT, `${variant}-r`);
      const idle = new Map<number, string[]>();
      for (let pod = 2; pod < MAX_PODS; pod++) {
        idle.set(pod, (await seedRooms(sql, S.idleRoomsPerPod, IDLE_MEMBERS_PER_ROOM, `${variant}-i${pod}-`)).members.flat());
      }
      const hot = await seedRooms(sql, 1, HOT_MEMBERS, `${variant}-hot`);
      const joinRooms = await seedRooms(sql, JOIN_ROOMS, 0, `${variant}-j`);
      const joinerIds = await seedUsers(sql, JOINERS, `${variant}-joiner`);
      const joiners = joinerIds.map((sub, i): Joiner => ({
        url: '', // set once pods 0 and 1 are up
        token: signHs256(secret, { sub, expiresInSeconds: 3600 }),
        // Each joiner walks the rooms from its own offset, so a step's joins spread over rooms.
        rooms: joinRooms.roomIds.map((_, r) => joinRooms.roomIds[(r + i * 5) % JOIN_ROOMS]!),
      }));
      clusters.push({
        variant,
        redisUrl,
        redisPid: proc.pid,
        redis,
        bus,
        pods: [],
        rooms,
        idle,
        hotRoom: hot.roomIds[0]!,
        hotMembers: hot.members[0]!,
        joins: null,
        joiners,
      });
    }
    loadgen = LoadgenClient.start(secret);
    log(`seeded ${db.name}: per variant ${S.rooms} rooms × ${FANOUT} members, ${S.idleRoomsPerPod * IDLE_MEMBERS_PER_ROOM} idle sockets per bystander pod, a hot room of ${HOT_MEMBERS}, ${JOINERS} joiners × ${JOIN_ROOMS} empty rooms; loadgen ${loadgen.pid}`);

    const podEnv = (cluster: Cluster, index: number) => ({
      adapter: ADAPTER[cluster.variant],
      busClusterNodes: cluster.bus?.cluster.nodesString ?? null,
      databaseUrl: db.url,
      redisUrl: cluster.redisUrl,
      redisPrefix: 'scale',
      jwtSecret: secret,
      // Up to 24 pods share one Postgres with other work: the two pods that carry the rooms
      // need a few connections for group commit, a bystander only its sockets' handshakes.
      databasePoolSize: index < 2 ? 3 : 1,
    });
    const idleGroup = (cluster: Cluster, index: number) => `${cluster.variant}-idle-${index}`;

    /** Starts or stops pods (and their idle sockets) until each variant runs `n`. */
    const setPods = async (n: number) => {
      await Promise.all(
        clusters.map(async (cluster) => {
          while (cluster.pods.length > n) {
            const index = cluster.pods.length - 1;
            await lg({ cmd: 'close', group: idleGroup(cluster, index) });
            await cluster.pods.pop()!.proc.stop();
          }
          const first = cluster.pods.length;
          const fresh = await Promise.all(
            Array.from({ length: n - first }, (_, k) => startPod(`scale-${cluster.variant}-${first + k}`, podEnv(cluster, first + k))),
          );
          cluster.pods.push(...fresh);
          for (let index = Math.max(first, 2); index < n; index++) {
            const specs: LoadgenSpec[] = (cluster.idle.get(index) ?? []).map((sub) => ({ url: cluster.pods[index]!.url, roomId: null, sub }));
            const opened = await lg<Opened>({ cmd: 'open', group: idleGroup(cluster, index), namespace: NAMESPACE, specs, concurrency: 10 });
            if (opened.failed) throw new Error(`${cluster.variant} pod ${index}: ${opened.failed} idle sockets failed: ${opened.firstError}`);
          }
        }),
      );
    };

    // ---- pods 0 and 1 and the sockets that send
    await setPods(2);
    for (const cluster of clusters) {
      const specs: LoadgenSpec[] = cluster.rooms.members.flatMap((users, r) =>
        users.map((sub, m) => ({ url: cluster.pods[m % 2]!.url, roomId: cluster.rooms.roomIds[r]!, sub })),
      );
      const opened = await lg<Opened>({ cmd: 'open', group: `${cluster.variant}-rooms`, namespace: NAMESPACE, specs, concurrency: 20 });
      if (opened.failed) throw new Error(`${cluster.variant}: ${opened.failed} member sockets failed: ${opened.firstError}`);
      for (const [i, joiner] of cluster.joiners.entries()) joiner.url = cluster.pods[i % 2]!.url;
      cluster.joins = new JoinDriver(cluster.joiners);
      await cluster.joins.open(NAMESPACE);
    }
    await checkAdapters(clusters);
    log(`up: ${clusters.map((c) => `${c.variant} pods ${c.pods.map((p) => p.proc.pid).join(',')} redis ${c.redisPid}`).join('; ')}`);

    // ---- measurement steps
    const sends: SendRecord[] = [];
    const joins: JoinRecord[] = [];
    const hots: HotRecord[] = [];
    const idles: IdleRecord[] = [];

    const sendStep = async (cluster: Cluster, n: number, phase: number, round: number): Promise<SendRecord> => {
      const group = `${cluster.variant}-rooms`;
      await lg({ cmd: 'start', group, rate: S.rate, maxOutstanding: MAX_OUTSTANDING });
      await sleep(S.warmupMs);
      const a = await snap(cluster);
      await lg({ cmd: 'mark', group });
      await sleep(S.windowMs);
      const result = await lg<StepResult>({ cmd: 'stop', group });
      const b = await snap(cluster);
      await sleep(S.settleMs);
      return { variant: cluster.variant, n, phase, round, lg: result, d: delta(a, b) };
    };

    /** 50 joins/s; with `sending`, while the rooms' traffic goes on (as asked), else alone. */
    const joinStep = async (cluster: Cluster, n: number, phase: number, sending: boolean): Promise<JoinRecord> => {
      const group = `${cluster.variant}-rooms`;
      const driver = cluster.joins!;
      if (sending) await lg({ cmd: 'start', group, rate: S.rate, maxOutstanding: MAX_OUTSTANDING });
      driver.start(S.joinRate);
      await sleep(S.warmupMs);
      const a = await snap(cluster);
      await lg({ cmd: 'mark', group });
      driver.mark();
      await sleep(S.joinWindowMs);
      const [result, window] = await Promise.all([lg<StepResult>({ cmd: 'stop', group }), driver.stop()]);
      const b = await snap(cluster);
      await sleep(S.settleMs);
      return { variant: cluster.variant, n, phase, sending, lg: result, joins: window, d: delta(a, b) };
    };

    const hotStep = async (cluster: Cluster, n: number, phase: number): Promise<HotRecord> => {
      const group = `${cluster.variant}-hot`;
      // Members spread over all N pods, the same 16 users at every N.
      const specs: LoadgenSpec[] = cluster.hotMembers.map((sub, i) => ({ url: cluster.pods[i % n]!.url, roomId: cluster.hotRoom, sub }));
      const opened = await lg<Opened>({ cmd: 'open', group, namespace: NAMESPACE, specs, concurrency: 16 });
      if (opened.failed) throw new Error(`${cluster.variant} hot room: ${opened.failed} sockets failed: ${opened.firstError}`);
      await lg({ cmd: 'start', group, rate: S.hotRate, maxOutstanding: MAX_OUTSTANDING });
      // Longer than the other warm-ups: a sharded pod that just started meets its first
      // deliveries here (the rooms' traffic never reaches it).
      await sleep(S.hotWarmupMs);
      const a = await snap(cluster);
      await lg({ cmd: 'mark', group });
      await sleep(S.hotWindowMs);
      const result = await lg<StepResult>({ cmd: 'stop', group });
      const b = await snap(cluster);
      await lg({ cmd: 'close', group });
      await sleep(S.settleMs);
      return { variant: cluster.variant, n, phase, lg: result, d: delta(a, b) };
    };

    const describe = (r: SendRecord) => {
      const msgs = r.lg.acked / (r.lg.windowMs / 1000);
      const byst = r.d.podCpu.slice(2);
      const bystPerMsg = byst.length ? byst.reduce((s, x) => s + x, 0) / byst.length / msgs : Number.NaN;
      return `${r.variant} N=${r.n} r${r.round}: acked ${msgs.toFixed(0)}/s, deliveries ${r.lg.deliveriesPerSec.toFixed(0)}/s, p50/p99 ${r.lg.latency.p50.toFixed(2)}/${r.lg.latency.p99.toFixed(1)} ms; bystander ${bystPerMsg.toFixed(2)} µs/msg, redis ${(r.d.redisCpu / msgs).toFixed(2)} µs/msg ${(r.d.redisOut / msgs).toFixed(0)} B/msg`;
    };
    const describeJoins = (r: JoinRecord) =>
      `${r.variant} N=${r.n} joins${r.sending ? ' while sending' : ' alone'}: ${(r.joins.ok / r.joins.seconds).toFixed(1)}/s ok, ${r.joins.failed} failed${r.joins.firstError ? ` (${r.joins.firstError})` : ''}, ` +
      `ack p50/p99 ${r.joins.ack.p50.toFixed(1)}/${r.joins.ack.p99.toFixed(1)} ms${r.sending ? `, ${(r.lg.acked / (r.lg.windowMs / 1000)).toFixed(0)} msg/s` : ''}`;
    const joinsPerStep = (S.joinRate * (S.joinWindowMs + S.warmupMs + 3000)) / 1000;

    const phaseBudget = (phase: number) => S.budgetMs * ((phase + 1) / (S.podCounts.length + 0.6));
    for (const [phase, n] of S.podCounts.entries()) {
      if (phase > 0 && elapsed() > phaseBudget(phase - 1) + 60_000) {
        log(`over the time budget: N=${n} (phase ${phase + 1}) skipped`);
        break;
      }
      const t0 = elapsed();
      await setPods(n);
      log(`N=${n}: ${clusters.map((c) => `${c.variant} ${c.pods.length} pods`).join(', ')} (${((elapsed() - t0) / 1000).toFixed(0)} s)`);
      // Warm-up: new pods meet traffic (JIT, first subscriptions) before any window counts. The
      // first phase warms both clusters at once, longer, joins included: pods fresh from tsx
      // took seconds to reach their pace, and N = 2's figures are the denominators of the ratios.
      const warm = async (cluster: Cluster, ms: number, withJoins: boolean) => {
        const group = `${cluster.variant}-rooms`;
        await lg({ cmd: 'start', group, rate: S.rate, maxOutstanding: MAX_OUTSTANDING });
        if (withJoins) cluster.joins!.start(S.joinRate);
        await sleep(ms);
        await Promise.all([lg({ cmd: 'stop', group }), withJoins ? cluster.joins!.stop() : null]);
      };
      if (phase === 0) await Promise.all(clusters.map((cluster) => warm(cluster, S.firstWarmupMs, true)));
      else for (const cluster of clusters) await warm(cluster, S.warmupMs * 1.5, false);
      await sleep(S.idleSettleMs);

      for (let round = 1; round <= S.rounds; round++) {
        // Idle level: nothing sent, every pod of both variants measured in the same window,
        // once what the last window left queued has drained.
        if (round > 1) await sleep(S.idleSettleMs);
        const idleA = await Promise.all(clusters.map(snap));
        await sleep(S.idleWindowMs);
        const idleB = await Promise.all(clusters.map(snap));
        for (const [i, cluster] of clusters.entries()) idles.push({ variant: cluster.variant, n, phase, d: delta(idleA[i]!, idleB[i]!) });
        const turn = (round + phase) % clusters.length;
        for (const cluster of [...clusters.slice(turn), ...clusters.slice(0, turn)]) {
          const record = await sendStep(cluster, n, phase, round);
          sends.push(record);
          log(describe(record));
        }
      }
      for (const sending of [true, false]) {
        for (const cluster of phase % 2 ? [...clusters].reverse() : clusters) {
          if (cluster.joins!.remaining < joinsPerStep) {
            log(`${cluster.variant}: no joins left for N=${n}`);
            continue;
          }
          const record = await joinStep(cluster, n, phase, sending);
          joins.push(record);
          log(describeJoins(record));
        }
      }
      for (const cluster of phase % 2 ? clusters : [...clusters].reverse()) {
        const record = await hotStep(cluster, n, phase);
        hots.push(record);
        log(`${cluster.variant} N=${n} hot room: ${record.lg.deliveriesPerSec.toFixed(0)} deliveries/s, p50/p99 ${record.lg.latency.p50.toFixed(2)}/${record.lg.latency.p99.toFixed(1)} ms`);
      }
    }

    const input: ScaleReportInput = {
      quick,
      machine,
      loadAtEnd: loadavg().map((x) => x.toFixed(2)).join(' '),
      generatedAt: new Date().toISOString(),
      elapsedMs: elapsed(),
      settings: { ...S, fanout: FANOUT, idleMembersPerRoom: IDLE_MEMBERS_PER_ROOM, hotMembers: HOT_MEMBERS, joiners: JOINERS },
      sends,
      joins,
      hots,
      idles,
    };
    // Every window's figures, so the report can be rebuilt (`--from-raw FILE`) without a rerun.
    const rawPath = join(tmpdir(), quick ? 'benchmarks-scale.quick.raw.json' : 'benchmarks-scale.raw.json');
    writeFileSync(rawPath, JSON.stringify(input));
    log(`raw figures: ${rawPath}`);
    writeReport(input);
    if (!quick && outArg < 0) linkFromBenchmarks(join(ROOT, 'BENCHMARKS.md'));
  } finally {
    await cleanup();
  }
}

function writeReport(input: ScaleReportInput): void {
  const report = buildScaleReport(input);
  process.stdout.write(`\n${report.table}\n`);
  writeFileSync(outPath, keepAnalysis(outPath, report.markdown));
  log(`wrote ${outPath}`);
}

/**
 * A gateway that ignored BUS_ADAPTER would label one adapter's figures as the other's: check on
 * each Redis that the classic pods hold pattern subscriptions and the sharded ones sharded channels.
 */
async function checkAdapters(clusters: Cluster[]): Promise<void> {
  for (const cluster of clusters) {
    const info = await readAllRedis(cluster);
    const ok = cluster.variant === 'classic' ? info.patterns >= cluster.pods.length && info.shardChannels === 0 : info.shardChannels > 0 && info.patterns === 0;
    if (!ok) {
      throw new Error(
        `${cluster.variant} pods' Redis shows ${info.patterns} pattern subscriptions and ${info.shardChannels} sharded channels: ` +
          'the gateway does not run the adapter BUS_ADAPTER asks for',
      );
    }
  }
}

const fromRaw = argv.indexOf('--from-raw');
const run = fromRaw >= 0 && argv[fromRaw + 1] ? async () => writeReport(JSON.parse(readFileSync(argv[fromRaw + 1]!, 'utf8')) as ScaleReportInput) : main;
run().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
  void stopAll();
});
