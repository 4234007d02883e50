/**
 * `pnpm bench:bus-nodes`: does the message bus grow when Redis nodes are added? The same two
 * gateway pods' traffic (fan-out 10, many rooms, the sharded adapter) on Redis Cluster buses of
 * 3, 6 and 9 masters (`--masters`), side by side in one run, taking turns.
 *
 * A bus scales out if each master carries only its share of the rooms: the busiest master's CPU
 * per cluster message is what caps the cluster's rate (a master is one thread), so it should
 * fall as masters are added (ideally by half from 3 to 6), while the masters' CPU per message
 * taken together and the gateways' stay flat (no message relayed to every node, as a classic
 * PUBLISH is in a Redis Cluster). Each master's idle level (cluster gossip, timers), measured in
 * every round, is taken out. The state Redis (rate limits, presence) is a separate standalone
 * Redis per variant, as in a deployment with `REDIS_BUS_CLUSTER_NODES`, and not counted here.
 *
 * Writes docs/benchmarks-bus-nodes.md (analysis below its marker kept) and prints its tables.
 *
 *   pnpm bench:bus-nodes [--masters 3,6,9] [--rate 1500] [--rooms 400] [--rounds 3] [--quick] [--out FILE]
 *
 * Everything on 127.0.0.1: private Redis servers and clusters, a private database dropped at the
 * end, real gateway processes; every loop bounded in count and time.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import postgres from 'postgres';
import { startRedisCluster, type LocalRedisCluster } from '@chat/testing/redis-cluster';
import { BenchDatabase } from './lib/bench-database.ts';
import type { StepResult } from './lib/driver.ts';
import { keepAnalysis } from './lib/kept-analysis.ts';
import { LoadgenClient, type LoadgenCommand } from './lib/loadgen-client.ts';
import { describeMachine, loadAverage } from './lib/machine.ts';
import { cleanUpOnSignal, ROOT, sleep, startRedis, stopAll } from './lib/procs.ts';
import { readRedisCounters, type RedisCounters } from './lib/redis-info.ts';
import { startPod, type Pod } from './lib/scale-pods.ts';
import { seedRooms } from './lib/scale-seed.ts';
import { fmt, fmtInt, median, spread } from './lib/stats.ts';
import { taskCpuMicros } from './lib/task-cpu.ts';
import type { LoadgenSpec } from './loadgen.ts';

const argv = process.argv.slice(2);
const option = (name: string, fallback: string) => {
  const at = argv.indexOf(`--${name}`);
  return at >= 0 && argv[at + 1] ? argv[at + 1]! : fallback;
};
const quick = argv.includes('--quick');
const MASTERS = [...new Set(option('masters', '3,6,9').split(',').map(Number))]
  .filter((m) => Number.isInteger(m) && m >= 3 && m <= 12)
  .slice(0, 4);
if (MASTERS.length < 2) throw new Error('--masters: at least two cluster sizes of 3 to 12 masters, e.g. 3,6');
const RATE = Math.max(100, Math.min(5000, Number(option('rate', quick ? '1000' : '1500'))));
const ROOMS = Math.max(12, Math.min(1000, Number(option('rooms', quick ? '200' : '400'))));
const ROUNDS = Math.max(1, Math.min(6, Number(option('rounds', quick ? '1' : '3'))));
const FANOUT = 10;
const PODS = 2;
const WARMUP_MS = 1000;
const WINDOW_MS = quick ? 2500 : 5000;
const IDLE_WINDOW_MS = quick ? 1500 : 3000;
const SETTLE_MS = 800;
const FIRST_WARMUP_MS = quick ? 4000 : 8000;
const MAX_OUTSTANDING = 300;
const NAMESPACE = '/socket';
const outPath = option('out', quick ? join(tmpdir(), 'benchmarks-bus-nodes.quick.md') : join(ROOT, 'docs/benchmarks-bus-nodes.md'));

const started = Date.now();
const log = (line: string) => process.stdout.write(`[bus-nodes ${((Date.now() - started) / 1000).toFixed(0).padStart(4)}s] ${line}\n`);

let loadgen: LoadgenClient | null = null;
function lg<T>(command: LoadgenCommand, timeoutMs?: number): Promise<T> {
  return loadgen ? loadgen.request<T>(command, timeoutMs) : Promise.reject(new Error('no loadgen'));
}

/** One cluster of the run: its bus of `masters` masters and its two pods; its rooms' sockets are loadgen group `group`. */
interface Variant {
  masters: number;
  /** One INFO connection per bus node. */
  nodes: Redis[];
  pods: Pod[];
  group: string;
}

interface Snap {
  t: number;
  pods: number[];
  nodes: (RedisCounters & { replyBytes: number })[];
}

async function snap(variant: Variant): Promise<Snap> {
  const t = performance.now();
  return { t, pods: variant.pods.map((pod) => taskCpuMicros(pod.proc.pid)), nodes: await Promise.all(variant.nodes.map(readRedisCounters)) };
}

/** Per second over a window: each pod's CPU, each bus node's CPU and publishes, µs/s and calls/s. */
interface Rates {
  podCpu: number[];
  nodeCpu: number[];
  nodePublishes: number[];
  /** Sharded channels each node holds at the window's end (the rooms it serves, and the main channel). */
  nodeChannels: number[];
}

function rates(a: Snap, b: Snap): Rates {
  const seconds = (b.t - a.t) / 1000;
  return {
    podCpu: b.pods.map((cpu, i) => (cpu - a.pods[i]!) / seconds),
    nodeCpu: b.nodes.map((node, i) => (node.cpuMicros - a.nodes[i]!.cpuMicros) / seconds),
    nodePublishes: b.nodes.map((node, i) => (node.publishCalls - a.nodes[i]!.publishCalls) / seconds),
    nodeChannels: b.nodes.map((node) => node.shardChannels),
  };
}

interface Window {
  masters: number;
  round: number;
  lg: StepResult;
  sending: Rates;
  /** The same nodes and pods, nothing sent, in this round. */
  idle: Rates;
}

/** The figures of one window, per acknowledged message; node CPU above each node's idle level. */
function perMessage(w: Window) {
  const msgs = w.lg.acked / (w.lg.windowMs / 1000);
  const aboveIdle = w.sending.nodeCpu.map((cpu, i) => (cpu - w.idle.nodeCpu[i]!) / msgs);
  const publishes = w.sending.nodePublishes.reduce((s, x) => s + x, 0);
  return {
    msgs,
    busiest: Math.max(...aboveIdle),
    total: aboveIdle.reduce((s, x) => s + x, 0),
    busiestPublishShare: Math.max(...w.sending.nodePublishes) / Math.max(1, publishes),
    publishesPerMessage: publishes / msgs,
    pods: w.sending.podCpu.reduce((s, x) => s + x, 0) / msgs,
    idlePerNode: w.idle.nodeCpu.reduce((s, x) => s + x, 0) / w.idle.nodeCpu.length,
  };
}

async function main() {
  const machine = describeMachine();
  log(`machine: ${machine.cpu}, ${machine.nproc} cores; load average ${machine.loadavg}; masters ${MASTERS.join(', ')}; ${RATE} msg/s into ${ROOMS} rooms × ${FANOUT}`);
  const secret = randomBytes(24).toString('hex');
  const db = BenchDatabase.fresh('busnodes');
  let sql: postgres.Sql | null = null;
  const variants: Variant[] = [];
  const buses: LocalRedisCluster[] = [];
  const infoClients: Redis[] = [];
  const cleanup = cleanUpOnSignal(async () => {
    for (const client of infoClients) client.disconnect();
    await loadgen?.stop();
    await stopAll();
    for (const bus of buses) await bus.close().catch(() => undefined);
    await sql?.end({ timeout: 2 }).catch(() => undefined);
    await db.drop(log);
  }, log);

  try {
    await db.create();
    sql = postgres(db.url, { max: 2, onnotice: () => {} });
    loadgen = LoadgenClient.start(secret);
    for (const masters of MASTERS) {
      const bus = await startRedisCluster({ masters });
      buses.push(bus);
      const nodes = bus.nodes.map((node) => new Redis(node.port, node.host, { maxRetriesPerRequest: 1, retryStrategy: () => null }));
      for (const node of nodes) node.on('error', () => undefined);
      infoClients.push(...nodes);
      const state = await startRedis(`state-redis-${masters}`);
      const rooms = await seedRooms(sql, ROOMS, FANOUT, `m${masters}-r`);
      const pods = await Promise.all(
        Array.from({ length: PODS }, (_, index) =>
          startPod(`bus-${masters}m-${index}`, {
            adapter: 'sharded',
            busClusterNodes: bus.nodesString,
            databaseUrl: db.url,
            redisUrl: state.url,
            redisPrefix: 'busnodes',
            jwtSecret: secret,
            databasePoolSize: 3,
          }),
        ),
      );
      const group = `m${masters}`;
      // Half of each room's members on each pod: every message crosses the bus.
      const specs: LoadgenSpec[] = rooms.members.flatMap((users, r) => users.map((sub, m) => ({ url: pods[m % PODS]!.url, roomId: rooms.roomIds[r]!, sub })));
      const opened = await lg<{ connected: number; failed: number; firstError: string | null }>(
        { cmd: 'open', group, namespace: NAMESPACE, specs, concurrency: 20 },
        120_000,
      );
      if (opened.failed) throw new Error(`${masters} masters: ${opened.failed} member sockets failed: ${opened.firstError}`);
      const variant: Variant = { masters, nodes, pods, group };
      const channels = (await snap(variant)).nodes.map((node) => node.shardChannels);
      // A pod that ignored REDIS_BUS_CLUSTER_NODES would leave the cluster without subscriptions.
      if (channels.reduce((s, x) => s + x, 0) < ROOMS) throw new Error(`${masters} masters hold ${channels.join('+')} sharded channels for ${ROOMS} rooms: the pods are not on this bus`);
      variants.push(variant);
      log(`${masters} masters: pods ${pods.map((pod) => pod.proc.pid).join(', ')}; sharded channels per master ${channels.join(', ')}`);
    }

    const run = async (variant: Variant, ms: number) => {
      await lg({ cmd: 'start', group: variant.group, rate: RATE, maxOutstanding: MAX_OUTSTANDING });
      await sleep(ms);
      await lg({ cmd: 'stop', group: variant.group });
    };
    // Freshly started pods (tsx compiles, JIT warms) take seconds to reach their pace.
    for (const variant of variants) await run(variant, FIRST_WARMUP_MS);
    await sleep(SETTLE_MS);

    const windows: Window[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      const idleA = await Promise.all(variants.map(snap));
      await sleep(IDLE_WINDOW_MS);
      const idleB = await Promise.all(variants.map(snap));
      const turn = (round - 1) % variants.length;
      for (const variant of [...variants.slice(turn), ...variants.slice(0, turn)]) {
        const index = variants.indexOf(variant);
        await lg({ cmd: 'start', group: variant.group, rate: RATE, maxOutstanding: MAX_OUTSTANDING });
        await sleep(WARMUP_MS);
        const a = await snap(variant);
        await lg({ cmd: 'mark', group: variant.group });
        await sleep(WINDOW_MS);
        const result = await lg<StepResult>({ cmd: 'stop', group: variant.group });
        const b = await snap(variant);
        const window: Window = { masters: variant.masters, round, lg: result, sending: rates(a, b), idle: rates(idleA[index]!, idleB[index]!) };
        windows.push(window);
        const f = perMessage(window);
        log(
          `round ${round}, ${variant.masters} masters: ${fmtInt(f.msgs)} msg/s acked, p50/p99 ${fmt(result.latency.p50, 2)}/${fmt(result.latency.p99, 1)} ms; ` +
            `busiest master ${fmt(f.busiest, 2)} µs/msg, all masters ${fmt(f.total, 2)} µs/msg, pods ${fmt(f.pods, 1)} µs/msg`,
        );
        await sleep(SETTLE_MS);
      }
    }
    const report = buildReport(machine, windows, variants);
    process.stdout.write(`\n${report.tables}\n`);
    writeFileSync(outPath, keepAnalysis(outPath, report.markdown));
    log(`wrote ${outPath}`);
  } finally {
    await cleanup();
  }
}

const range = (values: number[], digits: number) => {
  const [lo, hi] = spread(values);
  return `${fmt(median(values), digits)} [${fmt(lo, digits)}–${fmt(hi, digits)}]`;
};

function buildReport(machine: ReturnType<typeof describeMachine>, windows: Window[], variants: Variant[]) {
  const base = MASTERS[0]!;
  const byMasters = (masters: number) => windows.filter((w) => w.masters === masters);
  /** A ratio of a figure of `masters` to the same figure of the smallest bus, within each round. */
  const ratios = (masters: number, pick: (f: ReturnType<typeof perMessage>) => number) =>
    byMasters(masters).flatMap((w) => {
      const other = windows.find((x) => x.masters === base && x.round === w.round);
      return other ? [pick(perMessage(w)) / pick(perMessage(other))] : [];
    });

  const rows = MASTERS.map((masters) => {
    const fs = byMasters(masters).map(perMessage);
    const variant = variants.find((v) => v.masters === masters)!;
    const channels = byMasters(masters).at(-1)?.sending.nodeChannels ?? [];
    const busiest = fs.map((f) => f.busiest);
    return (
      `| ${masters} | ${fmtInt(median(fs.map((f) => f.msgs)))} | ${fmt(median(byMasters(masters).map((w) => w.lg.latency.p50)), 2)} / ${fmt(median(byMasters(masters).map((w) => w.lg.latency.p99)), 1)} | ` +
      `${range(busiest, 2)} | ${range(fs.map((f) => f.total), 2)} | ${range(fs.map((f) => f.total / masters), 2)} | ` +
      `${range(fs.map((f) => 100 * f.busiestPublishShare), 0)}% (even: ${fmt(100 / masters, 0)}%) | ${fmt(median(fs.map((f) => f.publishesPerMessage)), 3)} | ` +
      `${Math.min(...channels)}–${Math.max(...channels)} | ${fmt(median(fs.map((f) => f.idlePerNode)) / 1000, 1)} ms/s | ${range(fs.map((f) => f.pods), 1)} | ` +
      `${fmtInt(1e6 / median(busiest))} | ${variant.pods.length} |`
    );
  });
  const header =
    '| masters | acked msg/s | send→receive p50 / p99 ms | busiest master, CPU µs per message | all masters together, µs per message | per master (mean), µs per message | busiest master\'s share of SPUBLISH | SPUBLISH per message | sharded channels per master | idle level per master | gateway pods, CPU µs per message | messages/s at which the busiest master needs a whole core | pods |\n' +
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|';
  const ratioRows = MASTERS.slice(1).map(
    (masters) =>
      `| ${masters} ÷ ${base} | ${range(ratios(masters, (f) => f.busiest), 2)} (even spread: ${fmt(base / masters, 2)}) | ${range(ratios(masters, (f) => f.total), 2)} (no amplification: 1.00) | ${range(ratios(masters, (f) => f.pods), 2)} |`,
  );
  const ratioHeader = '| masters | busiest master per message | all masters per message | gateway pods per message |\n|---|---|---|---|';
  const tables = `${header}\n${rows.join('\n')}\n\nWithin each round, ratio to ${base} masters (median [min–max] over rounds):\n\n${ratioHeader}\n${ratioRows.join('\n')}`;

  const md = [
    '# Bus nodes (`pnpm bench:bus-nodes`)',
    '',
    `Generated by \`pnpm bench:bus-nodes\` on ${new Date().toISOString()} in ${((Date.now() - started) / 60_000).toFixed(1)} min${quick ? ' (QUICK mode)' : ''}.`,
    '',
    '## Machine',
    '',
    `- CPU: ${machine.cpu}; \`nproc\` = ${machine.nproc}; memory ${machine.memGiB} GiB; Node ${machine.node}.`,
    `- Load average at start: ${machine.loadavg}; at the end: ${loadAverage()}. The machine is shared: compare figures of one round (seconds apart), not absolute ones across runs.`,
    '',
    '## Method',
    '',
    `- One cluster per bus size: ${MASTERS.join(', ')} Redis Cluster masters (\`@chat/testing/redis-cluster\`, no replicas), each cluster's own standalone state Redis, ${PODS} real gateway processes (\`apps/gateway/src/main.ts\`, \`BUS_ADAPTER=sharded\`, \`REDIS_BUS_CLUSTER_NODES\` = that bus), one shared Postgres database.`,
    `- Traffic: ${fmtInt(RATE)} msg/s offered (send-message with an ack, \`test/bench/loadgen.ts\` in its own process) into ${ROOMS} rooms of ${FANOUT} members, half of each room on each pod, so every message crosses the bus. The rooms' channels hash to slots by their names (random room ids), so each master serves about ${ROOMS} ÷ masters of them. "Sharded channels per master" counts those and each member's own \`user:<id>\` channel (a pod subscribes to it while it holds one of the user's sockets), which carry nothing here.`,
    `- ${ROUNDS} round(s): an idle window (${IDLE_WINDOW_MS / 1000} s, nothing sent, every node measured), then a ${WINDOW_MS / 1000} s sending window per bus size after ${WARMUP_MS / 1000} s of warm-up, the order turning each round.`,
    '- A master\'s CPU: `used_cpu_user + used_cpu_sys` from its `INFO`, minus its idle level of the same round (cluster gossip, timers), divided by the acknowledged messages per second. SPUBLISH calls from `INFO commandstats`. Pods\' CPU from `/proc/<pid>/task/*/schedstat`.',
    '- "Messages/s at which the busiest master needs a whole core" = 1 s ÷ the busiest master\'s CPU per message: a Redis master executes commands on one thread, so this is where the bus tops out, on this machine\'s cores, if everything else kept up. A single hot room lives on one slot and so on one master whatever the cluster size: the spread applies to many rooms.',
    '',
    '## Results',
    '',
    tables,
    '',
    '## Every window',
    '',
    '| round | masters | acked msg/s | p50 / p99 ms | CPU above idle per master, µs per message | SPUBLISH/s per master | pods µs/s |',
    '|---|---|---|---|---|---|---|',
    ...windows.map((w) => {
      const msgs = w.lg.acked / (w.lg.windowMs / 1000);
      return `| ${w.round} | ${w.masters} | ${fmtInt(msgs)} | ${fmt(w.lg.latency.p50, 2)} / ${fmt(w.lg.latency.p99, 1)} | ${w.sending.nodeCpu.map((cpu, i) => fmt((cpu - w.idle.nodeCpu[i]!) / msgs, 2)).join(', ')} | ${w.sending.nodePublishes.map((x) => fmtInt(x)).join(', ')} | ${w.sending.podCpu.map((x) => fmtInt(x)).join(', ')} |`;
    }),
  ];
  return { tables, markdown: md.join('\n') };
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
