import { readFileSync, writeFileSync } from 'node:fs';
import type { StepResult } from './driver.ts';
import { ANALYSIS_MARKER } from './kept-analysis.ts';
import type { JoinWindow } from './join-driver.ts';
import { fmt, fmtInt, median, spread } from './stats.ts';

/** What a cluster of the bench runs: an adapter, and for the sharded one optionally a Redis Cluster bus. */
export type Variant = 'classic' | 'sharded' | 'sharded-cluster';

/** CPU and Redis figures of one window, per second (see scale.ts `delta`). */
export interface WindowDelta {
  seconds: number;
  podCpu: number[];
  podRead: number[];
  redisCpu: number;
  redisOut: number;
  redisIn: number;
  redisBusCommands: number;
  redisStateCommands: number;
}

export interface SendRecord {
  variant: Variant;
  n: number;
  phase: number;
  round: number;
  lg: StepResult;
  d: WindowDelta;
}
export interface JoinRecord {
  variant: Variant;
  n: number;
  phase: number;
  /** Joins while the rooms' traffic goes on, or alone (for a clean cost per join). */
  sending: boolean;
  lg: StepResult;
  joins: JoinWindow;
  d: WindowDelta;
}
export interface HotRecord {
  variant: Variant;
  n: number;
  phase: number;
  lg: StepResult;
  d: WindowDelta;
}
export interface IdleRecord {
  variant: Variant;
  n: number;
  phase: number;
  d: WindowDelta;
}

export interface ScaleReportInput {
  quick: boolean;
  machine: { cpu: string; nproc: number; memGiB: string; loadAtStart: string };
  loadAtEnd: string;
  generatedAt: string;
  elapsedMs: number;
  settings: {
    podCounts: number[];
    rounds: number;
    rate: number;
    rooms: number;
    idleRoomsPerPod: number;
    warmupMs: number;
    windowMs: number;
    firstWarmupMs: number;
    idleSettleMs: number;
    idleWindowMs: number;
    joinRate: number;
    joinWindowMs: number;
    hotRate: number;
    hotWarmupMs: number;
    hotWindowMs: number;
    fanout: number;
    idleMembersPerRoom: number;
    hotMembers: number;
    joiners: number;
  };
  sends: SendRecord[];
  joins: JoinRecord[];
  hots: HotRecord[];
  idles: IdleRecord[];
}

/** The targets (issue 16). Row labels are read by a script: keep them exactly. */
export const TARGET_ROWS = {
  bystanderSharded: 'bystander CPU per message, sharded, N=8',
  bystanderClassic: 'bystander CPU per message, classic, N=8',
  redisRatioSharded: 'Redis CPU per message, sharded, N=8 / N=2',
  clusterRatio: 'cluster CPU per delivery, N=8 / N=2',
} as const;

/** A window whose acknowledged rate is below this share of the offered rate fell behind. */
const KEPT_UP_SHARE = 0.9;
const mean = (values: number[]) => (values.length ? values.reduce((sum, x) => sum + x, 0) / values.length : Number.NaN);
const sum = (values: number[]) => values.reduce((total, x) => total + x, 0);
const msgsPerSec = (lg: StepResult) => lg.acked / (lg.windowMs / 1000);

/** The figures of one sending window, per cluster message or per delivery. */
export function sendFigures(r: { n: number; lg: StepResult; d: WindowDelta }) {
  const msgs = msgsPerSec(r.lg);
  const bystanders = r.d.podCpu.slice(2, r.n);
  return {
    msgs,
    deliveries: r.lg.deliveriesPerSec,
    /** Mean CPU of one bystander pod (no socket in the rooms that carry traffic) per message. */
    bystanderPerMsg: bystanders.length ? mean(bystanders) / msgs : Number.NaN,
    bystanderPerSec: bystanders.length ? mean(bystanders) : Number.NaN,
    /** Bytes one bystander pod read (from Redis and its idle clients) per message. */
    bystanderReadPerMsg: r.n > 2 ? mean(r.d.podRead.slice(2, r.n)) / msgs : Number.NaN,
    /** Mean of pods 0 and 1, which hold the rooms' members, per message. */
    memberPerMsg: mean(r.d.podCpu.slice(0, 2)) / msgs,
    redisCpuPerMsg: r.d.redisCpu / msgs,
    redisOutPerMsg: r.d.redisOut / msgs,
    /** Every pod and the Redis, per delivery. */
    clusterPerDelivery: (sum(r.d.podCpu.slice(0, r.n)) + r.d.redisCpu) / r.lg.deliveriesPerSec,
    p50: r.lg.latency.p50,
    p99: r.lg.latency.p99,
  };
}

/** median [min–max], or the single value. */
function mm(values: number[], digits = 2, unit = ''): string {
  const finite = values.filter(Number.isFinite);
  if (finite.length === 0) return 'n/a';
  const [lo, hi] = spread(finite);
  const m = fmt(median(finite), digits) + unit;
  return finite.length === 1 ? m : `${m} [${fmt(lo, digits)}–${fmt(hi, digits)}]`;
}

export function buildScaleReport(input: ScaleReportInput): { table: string; markdown: string } {
  const { settings: S } = input;
  const variants = (['classic', 'sharded', 'sharded-cluster'] as const).filter((v) => input.sends.some((r) => r.variant === v));
  const ns = [...new Set(S.podCounts)].sort((a, b) => a - b);
  /**
   * The sending windows of a cell, less those that fell behind the offered rate (the machine
   * saturated: commands batch differently, per-message figures drift) unless none kept up.
   */
  const keptUp = (r: SendRecord) => msgsPerSec(r.lg) >= KEPT_UP_SHARE * S.rate;
  const windowsOf = (variant: Variant, n: number) => {
    const all = input.sends.filter((r) => r.variant === variant && r.n === n);
    const kept = all.filter(keptUp);
    return kept.length > 0 ? kept : all;
  };
  const sendsOf = (variant: Variant, n: number) => windowsOf(variant, n).map(sendFigures);
  const behindNote = (variant: Variant, n: number) => {
    const all = input.sends.filter((r) => r.variant === variant && r.n === n);
    const behind = all.filter((r) => !keptUp(r)).length;
    if (behind === 0) return '';
    return behind === all.length ? ' †all' : ` †${behind}`;
  };
  const med = (variant: Variant, n: number, key: keyof ReturnType<typeof sendFigures>) => median(sendsOf(variant, n).map((f) => f[key]));
  const maxN = Math.max(...ns);
  const minN = Math.min(...ns);

  // ---- targets
  const verdict = (value: number, limit: number) =>
    !Number.isFinite(value) ? 'not measured' : value <= limit ? 'met' : `MISSED by ${fmt(value - limit, value - limit < 0.01 ? 3 : 2)}`;
  const ratio = (variant: Variant, key: 'redisCpuPerMsg' | 'clusterPerDelivery', unit: string) => {
    const hi = med(variant, maxN, key);
    const lo = med(variant, minN, key);
    return { value: hi / lo, text: `${fmt(hi / lo, 2)} (${fmt(hi, 2)} / ${fmt(lo, 2)} ${unit}, medians)` };
  };
  const idleRecords = (variant: Variant, n: number) => input.idles.filter((r) => r.variant === variant && r.n === n);
  /** A bystander pod's CPU per second with nothing sent (median of this N's idle windows). */
  const idleOf = (variant: Variant, n: number) => median(idleRecords(variant, n).map((r) => mean(r.d.podCpu.slice(2, n))));
  const idleMembersOf = (variant: Variant, n: number) => median(idleRecords(variant, n).map((r) => mean(r.d.podCpu.slice(0, 2))));
  const idleRedisOf = (variant: Variant, n: number) => median(idleRecords(variant, n).map((r) => r.d.redisCpu));
  const aboveIdle = (variant: Variant, n: number) => sendsOf(variant, n).map((f) => (f.bystanderPerSec - idleOf(variant, n)) / f.msgs);
  /** The target is the idle level: what a bystander spends per message above it, and with it. */
  const bystanderCell = (variant: Variant) => {
    const raw = sendsOf(variant, maxN).map((f) => f.bystanderPerMsg);
    const read = sendsOf(variant, maxN).map((f) => f.bystanderReadPerMsg);
    return `${mm(aboveIdle(variant, maxN), 2, ' µs')} above its idle level; ${mm(raw, 2, ' µs')} with it (idle: ${fmtInt(idleOf(variant, maxN))} µs/s per pod); it read ${fmt(median(read), 0)} B per message`;
  };
  const redisSharded = ratio('sharded', 'redisCpuPerMsg', 'µs');
  const clusterSharded = ratio('sharded', 'clusterPerDelivery', 'µs');
  const redisClassic = ratio('classic', 'redisCpuPerMsg', 'µs');
  const clusterClassic = ratio('classic', 'clusterPerDelivery', 'µs');
  const targets = [
    '| figure | target | measured | verdict |',
    '|---|---|---|---|',
    `| ${TARGET_ROWS.bystanderSharded} | ≤ 0.5 µs (idle level) | ${bystanderCell('sharded')} | ${verdict(median(aboveIdle('sharded', maxN)), 0.5)} |`,
    `| ${TARGET_ROWS.bystanderClassic} | — | ${bystanderCell('classic')} | reference |`,
    `| ${TARGET_ROWS.redisRatioSharded} | ≤ 1.2 | ${redisSharded.text} | ${verdict(redisSharded.value, 1.2)} |`,
    `| ${TARGET_ROWS.clusterRatio} | ≤ 1.2 | ${clusterSharded.text}, sharded | ${verdict(clusterSharded.value, 1.2)} |`,
    `| Redis CPU per message, classic, N=8 / N=2 | — | ${redisClassic.text} | reference |`,
    `| cluster CPU per delivery, classic, N=8 / N=2 | — | ${clusterClassic.text} | reference |`,
  ];
  if (variants.includes('sharded-cluster')) {
    targets.push(
      `| bystander CPU per message, sharded on a Redis Cluster bus, N=8 | — | ${bystanderCell('sharded-cluster')} | reference |`,
      `| Redis CPU per message (state + 3 bus masters), sharded on a Redis Cluster bus, N=8 / N=2 | — | ${ratio('sharded-cluster', 'redisCpuPerMsg', 'µs').text} | reference |`,
      `| cluster CPU per delivery, sharded on a Redis Cluster bus, N=8 / N=2 | — | ${ratio('sharded-cluster', 'clusterPerDelivery', 'µs').text} | reference |`,
    );
  }

  // ---- per N
  const perN = [
    '| N | adapter | msgs/s | deliveries/s | bystander pod CPU µs/msg | … above its idle level | bystander pod bytes read/msg | pod 0/1 CPU µs/msg | Redis CPU µs/msg | Redis output B/msg | cluster CPU µs/delivery | send→receive p50 / p99 ms |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const n of ns) {
    for (const variant of variants) {
      const f = sendsOf(variant, n);
      if (f.length === 0) continue;
      perN.push(
        `| ${n} | ${variant} | ${fmtInt(median(f.map((x) => x.msgs)))}${behindNote(variant, n)} | ${fmtInt(median(f.map((x) => x.deliveries)))} | ` +
          `${n > 2 ? mm(f.map((x) => x.bystanderPerMsg)) : '—'} | ${n > 2 ? mm(aboveIdle(variant, n)) : '—'} | ${n > 2 ? mm(f.map((x) => x.bystanderReadPerMsg), 0) : '—'} | ` +
          `${mm(f.map((x) => x.memberPerMsg), 1)} | ${mm(f.map((x) => x.redisCpuPerMsg))} | ${mm(f.map((x) => x.redisOutPerMsg), 0)} | ` +
          `${mm(f.map((x) => x.clusterPerDelivery))} | ${fmt(median(f.map((x) => x.p50)), 2)} / ${fmt(median(f.map((x) => x.p99)), 1)} |`,
      );
    }
  }

  // ---- Redis, split
  const redisRows = [
    '| N | adapter | Redis CPU µs/msg | … executing bus commands (PUBLISH/SPUBLISH, subscriptions) | … executing state commands (rate-limit script, presence…) | … the rest (reading requests, writing replies and pub/sub deliveries, event loop) | output B/msg | input B/msg |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const n of ns) {
    for (const variant of variants) {
      const records = windowsOf(variant, n);
      if (records.length === 0) continue;
      const per = (pick: (r: SendRecord) => number) => records.map((r) => pick(r) / msgsPerSec(r.lg));
      redisRows.push(
        `| ${n} | ${variant} | ${mm(per((r) => r.d.redisCpu))} | ${mm(per((r) => r.d.redisBusCommands))} | ${mm(per((r) => r.d.redisStateCommands))} | ` +
          `${mm(per((r) => r.d.redisCpu - r.d.redisBusCommands - r.d.redisStateCommands))} | ${mm(per((r) => r.d.redisOut), 0)} | ${mm(per((r) => r.d.redisIn), 0)} |`,
      );
    }
  }

  // ---- idle level
  const idleRows = [
    '| N | adapter | bystander pod CPU, idle (µs/s per pod) | as µs per message at the offered rate | pod 0/1 CPU, idle (µs/s per pod) | Redis CPU, idle (µs/s) |',
    '|---|---|---|---|---|---|',
  ];
  for (const n of ns) {
    for (const variant of variants) {
      const records = idleRecords(variant, n);
      if (records.length === 0) continue;
      const idle = idleOf(variant, n);
      idleRows.push(
        `| ${n} | ${variant} | ${n > 2 ? mm(records.map((r) => mean(r.d.podCpu.slice(2, n))), 0) : '—'} | ${n > 2 ? fmt(idle / S.rate, 2) : '—'} | ` +
          `${mm(records.map((r) => mean(r.d.podCpu.slice(0, 2))), 0)} | ${mm(records.map((r) => r.d.redisCpu), 0)} |`,
      );
    }
  }

  // ---- joins
  const joinRows = [
    '| N | adapter | joins | joins/s (ok) | failed | bystander pod CPU µs/join | pod 0/1 CPU µs/join | Redis CPU µs/join | join ack p50 / p99 ms | msgs/s meanwhile |',
    '|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const n of ns) {
    for (const sending of [true, false]) {
      for (const variant of variants) {
        const records = input.joins.filter((r) => r.variant === variant && r.n === n && r.sending === sending);
        if (records.length === 0) continue;
        const perJoin = records.map((r) => {
          const joinsPerSec = r.joins.ok / r.joins.seconds;
          const msgs = msgsPerSec(r.lg);
          // The joins' share = the window's CPU less what the pods spend without them: their
          // idle level, plus (while sending) the same adapter's send-only CPU per message at
          // this N times the window's messages. The second term is what makes the while-sending
          // figures noisy: a small difference of two large numbers.
          const base = (idle: number, perMsg: number) => idle + (sending ? perMsg * msgs : 0);
          const bystanders = r.d.podCpu.slice(2, n);
          const bystanderSendPerMsg = median(aboveIdle(variant, n));
          const memberSendPerMsg = med(variant, n, 'memberPerMsg') - idleMembersOf(variant, n) / med(variant, n, 'msgs');
          const redisSendPerMsg = med(variant, n, 'redisCpuPerMsg') - idleRedisOf(variant, n) / med(variant, n, 'msgs');
          return {
            joinsPerSec,
            failed: r.joins.failed,
            msgs,
            bystander: bystanders.length ? (mean(bystanders) - base(idleOf(variant, n), bystanderSendPerMsg)) / joinsPerSec : Number.NaN,
            member: (mean(r.d.podCpu.slice(0, 2)) - base(idleMembersOf(variant, n), memberSendPerMsg)) / joinsPerSec,
            redis: (r.d.redisCpu - base(idleRedisOf(variant, n), redisSendPerMsg)) / joinsPerSec,
            p50: r.joins.ack.p50,
            p99: r.joins.ack.p99,
          };
        });
        // While sending, pods 0/1 and Redis spend 100–1000× the joins' share on the messages:
        // what is left after subtracting is noise, not a cost (the rows "alone" give it).
        const noisy = (text: string) => (sending ? 'noise' : text);
        joinRows.push(
          `| ${n} | ${variant} | ${sending ? 'while sending' : 'alone'} | ${mm(perJoin.map((x) => x.joinsPerSec), 1)} | ${sum(perJoin.map((x) => x.failed))} | ${n > 2 ? mm(perJoin.map((x) => x.bystander), 0) : '—'} | ` +
            `${noisy(mm(perJoin.map((x) => x.member), 0))} | ${noisy(mm(perJoin.map((x) => x.redis), 0))} | ${fmt(median(perJoin.map((x) => x.p50)), 1)} / ${fmt(median(perJoin.map((x) => x.p99)), 1)} | ${sending ? fmtInt(median(perJoin.map((x) => x.msgs))) : '—'} |`,
        );
      }
    }
  }

  // ---- hot room
  const hotRows = [
    '| N | adapter | msgs/s | deliveries/s | send→receive p50 / p95 / p99 ms | cluster CPU µs/delivery | Redis output B/msg |',
    '|---|---|---|---|---|---|---|',
  ];
  for (const n of ns) {
    for (const variant of variants) {
      const records = input.hots.filter((r) => r.variant === variant && r.n === n);
      if (records.length === 0) continue;
      hotRows.push(
        `| ${n} | ${variant} | ${fmtInt(median(records.map((r) => msgsPerSec(r.lg))))} | ${fmtInt(median(records.map((r) => r.lg.deliveriesPerSec)))} | ` +
          `${mm(records.map((r) => r.lg.latency.p50))} / ${mm(records.map((r) => r.lg.latency.p95), 1)} / ${mm(records.map((r) => r.lg.latency.p99), 1)} | ` +
          `${mm(records.map((r) => (sum(r.d.podCpu.slice(0, n)) + r.d.redisCpu) / r.lg.deliveriesPerSec))} | ${mm(records.map((r) => r.d.redisOut / msgsPerSec(r.lg)), 0)} |`,
      );
    }
  }

  // ---- drift: the smallest N, measured first and last
  const driftRows = [
    '| N | adapter | phase | msgs/s | pod 0/1 CPU µs/msg | Redis CPU µs/msg | cluster CPU µs/delivery | p50 / p99 ms |',
    '|---|---|---|---|---|---|---|---|',
  ];
  const phasesOfMin = [...new Set(input.sends.filter((r) => r.n === minN).map((r) => r.phase))];
  if (phasesOfMin.length > 1) {
    for (const variant of variants) {
      for (const phase of phasesOfMin) {
        const f = input.sends.filter((r) => r.variant === variant && r.n === minN && r.phase === phase).map(sendFigures);
        driftRows.push(
          `| ${minN} | ${variant} | ${phase + 1} | ${fmtInt(median(f.map((x) => x.msgs)))} | ${mm(f.map((x) => x.memberPerMsg), 1)} | ${mm(f.map((x) => x.redisCpuPerMsg))} | ` +
            `${mm(f.map((x) => x.clusterPerDelivery))} | ${fmt(median(f.map((x) => x.p50)), 2)} / ${fmt(median(f.map((x) => x.p99)), 1)} |`,
        );
      }
    }
  }

  // ---- every window
  const stepRows = [
    '| phase | N | round | adapter | msgs/s | deliveries/s | ack failures | pod CPU µs/s (0, 1, bystanders…) | Redis CPU µs/s | Redis out kB/s | p50 / p99 ms |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const r of input.sends) {
    stepRows.push(
      `| ${r.phase + 1} | ${r.n} | ${r.round} | ${r.variant} | ${fmtInt(msgsPerSec(r.lg))}${keptUp(r) ? '' : ' †'} | ${fmtInt(r.lg.deliveriesPerSec)} | ${r.lg.ackFailed} | ` +
        `${r.d.podCpu.slice(0, r.n).map((x) => fmtInt(x)).join(', ')} | ${fmtInt(r.d.redisCpu)} | ${fmtInt(r.d.redisOut / 1000)} | ${fmt(r.lg.latency.p50, 2)} / ${fmt(r.lg.latency.p99, 1)} |`,
    );
  }

  const drift = S.podCounts.filter((n) => n === minN).length > 1;
  const md: string[] = [];
  md.push('# Scaling benchmark (`pnpm bench:scale`)', '');
  md.push(`Generated by \`pnpm bench:scale${input.quick ? ' -- --quick' : ''}\` on ${input.generatedAt} in ${fmt(input.elapsedMs / 60_000, 1)} min. Issue 16, point 6.`, '');
  md.push('## Machine', '');
  md.push(`- CPU: ${input.machine.cpu}; \`nproc\` = ${input.machine.nproc}; ${input.machine.memGiB} GiB`);
  md.push(`- load average at start ${input.machine.loadAtStart}, at end ${input.loadAtEnd}: the machine is shared with other work, so only figures measured side by side in this run (the two adapters, taking turns seconds apart at each N) compare well; absolute figures and ratios across N (minutes apart) carry the machine's drift.`);
  md.push('- everything on 127.0.0.1: Postgres (shared instance, a private database `chat_scale_*`, dropped at the end), one private `redis-server` per adapter on a free port (no other client touches it), the gateway pods, the load generator.', '');
  md.push('## Method', '');
  md.push(`- Two clusters run side by side, one per adapter (\`BUS_ADAPTER=classic\`: \`createAdapter\`, every pod PSUBSCRIBEs the namespace; \`BUS_ADAPTER=sharded\`: \`createShardedAdapter\` in \`dynamic\` mode, a pod SSUBSCRIBEs a room's channel only while it holds a socket in it), each on its own private Redis (bus and state on the same standalone Redis 7), each pod a real gateway process (\`apps/gateway/src/main.ts\`). No worker runs.${variants.includes('sharded-cluster') ? ' With `--cluster-bus` a third cluster, `sharded-cluster`, runs the sharded adapter with its bus on a private three-master Redis Cluster (`REDIS_BUS_CLUSTER_NODES`, `@chat/testing/redis-cluster`) and its state on its own private Redis; its Redis figures sum the state Redis and the three masters.' : ''}`);
  md.push(`- Traffic: ${fmtInt(S.rate)} msg/s offered (send-message with an ack, from the load generator \`test/bench/loadgen.ts\` in its own process) into ${S.rooms} rooms of ${S.fanout} members, 5 on pod 0 and 5 on pod 1 (fan-out ${S.fanout}). Pods 2… are bystanders: each holds ${S.idleRoomsPerPod * S.idleMembersPerRoom} idle sockets whose users are members of ${S.idleRoomsPerPod} other rooms (${S.idleMembersPerRoom} each) that carry no traffic.`);
  md.push(`- N (pods per cluster) is measured in the order ${S.podCounts.join(', ')}: pods are added (or stopped) between phases, the member sockets stay connected.${drift ? ` N = ${minN} comes twice, first and last, to show how far the machine drifted over the run; its figures pool both.` : ''} At each N: a warm-up at the offered rate per adapter (in the first phase ${fmt(S.firstWarmupMs / 1000, 1)} s, both clusters at once, joins included: freshly started pods take seconds to reach their pace), then ${fmt(S.idleSettleMs / 1000, 1)} s for queues to drain; ${S.rounds} round(s) of an idle window (${fmt(S.idleWindowMs / 1000, 1)} s, nothing sent, both clusters measured together) and one ${fmt(S.windowMs / 1000, 1)} s sending window per adapter after ${fmt(S.warmupMs / 1000, 1)} s of warm-up, the adapters' order turning; then ${S.joinRate} join-room/s while sending, then alone (${fmt(S.joinWindowMs / 1000, 1)} s each); then a hot room.`);
  md.push('- CPU: on-CPU time of every thread of each pod from `/proc/<pid>/task/*/schedstat` (nanoseconds; `/proc/<pid>/stat` counts 10 ms ticks, too coarse for an idle pod over seconds). Redis: `INFO` `used_cpu_user + used_cpu_sys` and `total_net_output_bytes` deltas on the adapter\'s private Redis (the bench\'s own INFO replies taken out). A figure "per message" divides a rate by the acknowledged messages per second in the same window; "per delivery" by the `new-message` frames the load generator received per second.');
  md.push('- bystander pod CPU per message = the mean of the bystander pods\' CPU per second ÷ messages per second: what one more pod with no member in the busy rooms costs per cluster message (its idle level included; the next column takes out its idle level, measured in every round at the same N). The target compares the figure above the idle level: the idle level itself (timers, heartbeats, GC of an idle Node process) divided by the offered rate is an artefact of the rate chosen, and the same with either adapter. cluster CPU per delivery = every pod of the cluster plus its Redis (not Postgres, which does the same work at every N and for both adapters), ÷ deliveries per second.');
  md.push(`- Joins: ${S.joiners} users, each with a socket on pod 0 or 1, join rooms they are not in yet (empty rooms with no traffic) at ${S.joinRate}/s, once while the ${fmtInt(S.rate)} msg/s go on and once alone. Per join = (the window\'s CPU − the idle level − while sending, the same adapter\'s send-only CPU per message above idle at this N × the window\'s messages) ÷ joins: the figures alone are the clean ones; while sending they are a small difference of two large numbers. A join changes the membership in Postgres, mirrors it to every socket of the user on every pod (\`socketsJoin\`, on the main channel: every pod, both adapters), and sends \`user-joined\` to the room and \`room-joined\` to the user\'s other sockets.`);
  md.push(`- Hot room: ${S.hotMembers} members spread over all N pods (the same users at every N, reconnected), ${fmtInt(S.hotRate)} msg/s offered into it alone, ${fmt(S.hotWarmupMs / 1000, 1)} s warm-up (a sharded pod that just started meets its first deliveries here), ${fmt(S.hotWindowMs / 1000, 1)} s window: the latency a message takes when every pod holds a member.`, '');
  md.push('## Targets (issue 16)', '', ...targets, '');
  md.push('## Per N (medians [min–max] over the windows)', '', ...perN, '');
  md.push(`† = windows that acknowledged less than ${Math.round(KEPT_UP_SHARE * 100)}% of the offered rate (the shared machine saturated): left out of the medians above, and of the targets, unless every window of the cell fell behind (†all). "bystander pod bytes read/msg" is \`rchar\` of /proc/<pid>/io: what reached the pod from Redis and its idle clients.`, '');
  if (phasesOfMin.length > 1) {
    md.push(`## Drift: N = ${minN} measured first and last`, '', `The same pods, rooms and rate minutes apart: how far the shared machine moved the figures over the run (all windows, behind or not). A ratio across N moves by as much.`, '', ...driftRows, '');
  }
  md.push('## Where Redis spends it (INFO commandstats; same windows)', '', ...redisRows, '');
  md.push('## Idle level of a bystander pod', '', ...idleRows, '');
  md.push(`## Joins (${S.joinRate}/s while sending)`, '', ...joinRows, '');
  md.push(`## Hot room (${S.hotMembers} members on all N pods, ${fmtInt(S.hotRate)} msg/s offered)`, '', ...hotRows, '');
  md.push('## Every sending window', '', ...stepRows, '');
  const table = [`Targets (issue 16), pnpm bench:scale${input.quick ? ' --quick' : ''}:`, ...targets, '', 'Per N:', ...perN, '', 'Joins:', ...joinRows, '', 'Hot room:', ...hotRows].join('\n');
  return { table, markdown: md.join('\n') };
}

const LINK_LINE = 'The scaling benchmark (`pnpm bench:scale`: N = 2, 4, 8 pods, classic against sharded adapter, issue 16) writes [docs/benchmarks-scale.md](docs/benchmarks-scale.md).';

/**
 * BENCHMARKS.md is regenerated by `pnpm bench` above its analysis marker and kept below it:
 * the link to the scaling figures goes right under the marker, so both benches keep it.
 */
export function linkFromBenchmarks(path: string): void {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return;
  }
  if (text.includes('docs/benchmarks-scale.md')) return;
  const at = text.indexOf(ANALYSIS_MARKER);
  if (at < 0) return;
  const end = text.indexOf('\n', at) + 1 || text.length;
  writeFileSync(path, `${text.slice(0, end)}\n${LINK_LINE}\n${text.slice(end)}`);
}
