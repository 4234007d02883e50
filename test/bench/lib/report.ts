import type { ProfileSummary } from './cdp.ts';
import type { StepResult } from './driver.ts';
import type { Machine } from './machine.ts';
import type { RedisAudit } from './redis-audit.ts';
import { ROWS_PER_ROOM, type PartitionDrop } from './purge-day.ts';
import { fmt, fmtInt, median, spread, type Percentiles } from './stats.ts';

/** The processes whose CPU a step measures. */
export type Role = 'gateways' | 'extraGateways' | 'worker' | 'bare' | 'adapter' | 'extraAdapters' | 'redis' | 'postgres' | 'loadgen';
export const ROLES: Role[] = ['gateways', 'extraGateways', 'worker', 'bare', 'adapter', 'extraAdapters', 'redis', 'postgres', 'loadgen'];

export type Variant = 'FULL' | 'ADAPTER' | 'BARE';
/** The processes that serve each variant's clients. */
export const SERVER_ROLE: Record<Variant, Role> = { FULL: 'gateways', ADAPTER: 'adapter', BARE: 'bare' };

/** CPU per second of the processes serving a step's clients: in the hot-room phase, all four of them. */
export function serverCpuPerSec(r: StepRecord): number {
  const extra = r.phase !== 'hot' ? 0 : r.variant === 'FULL' ? r.cpuPerSec.extraGateways : r.variant === 'ADAPTER' ? r.cpuPerSec.extraAdapters : 0;
  return r.cpuPerSec[SERVER_ROLE[r.variant]] + extra;
}

export interface StepRecord {
  phase: 'saturation' | 'fixed' | 'hot';
  variant: Variant;
  /** The load generator's client group (HOT-2 / HOT-4 in the hot-room phase). */
  group: string;
  round: number;
  /** Offered messages/s. */
  rate: number;
  /** For fixed loads: the share of ADAPTER's saturation. */
  share: number | null;
  lg: StepResult;
  seconds: number;
  cpuPerSec: Record<Role, number>;
  sysPerSec: Record<Role, number>;
  /** Microseconds per second each role's threads waited for a CPU (run queue, /proc/<pid>/task/<tid>/schedstat). */
  runQueuePerSec: Record<Role, number>;
  /** Share of the window during which some task on the machine waited for a CPU (PSI); NaN without PSI. */
  cpuPressure: number;
  persistedPerSec: number;
  batchesPerSec: number;
  /** Mean group-commit batch duration (statement + COMMIT), from the gateways' /metrics. */
  batchMs: number;
  batchSize: number;
  dbRoundTripsPerMsg: number;
  txPerMsg: number;
  redisPerMsg: number;
  redisTop: [string, number][];
  /** Mean number of the database's backends waiting on a lock over the window (hot room only; NaN elsewhere). */
  lockWaiting: number;
}

export interface IdleFigures {
  n: number;
  rssPerConn: number;
  heapPerConn: number;
  connectMs: number;
}

export interface HistoryCase {
  label: string;
  /** A page of the big room (the target's "1M messages"), not the small one. */
  big: boolean;
  p: Percentiles;
  /** `/livez`, each request right after a page request on the same connection. */
  livez: Percentiles;
}

export interface ReportInput {
  machine: Machine;
  /** A one-row durable commit at the start and at the end of the run. */
  commitFloor: [Percentiles, Percentiles];
  loadAtEnd: string;
  quick: boolean;
  settings: {
    rounds: number;
    warmupMs: number;
    windowMs: number;
    fixedWindowMs: number;
    ladder: number[];
    rooms: number;
    hotRate: number;
    hotMembers: number;
    historyRows: number;
    historyRequests: number;
    shares: number[];
    fanout: number;
    maxOutstanding: number;
    saturationOutstanding: number;
    saturatedShare: number;
  };
  records: StepRecord[];
  sat: { full: StepRecord[]; adapter: StepRecord[] };
  adapterMaxMsgs: number;
  audit: RedisAudit | null;
  profile: (ProfileSummary & { rate: number }) | null;
  idle: Partial<Record<'FULL' | 'BARE', IdleFigures>>;
  idleN: number;
  history: HistoryCase[];
  historyInsertMs: number;
  /** A day of messages purged by dropping its partition; null when the budget left no time. */
  purge: PartitionDrop | null;
  elapsedMs: number;
  budgetHit: boolean;
  /** Variants still keeping up at the top offered rate: their "saturation" is only a lower bound. */
  unsaturated: string[];
}

const ms = (v: number) => `${fmt(v, v < 10 ? 2 : 1)} ms`;
/** median [min–max] over rounds, or the one value. */
function ms3(values: number[], digits = 2, unit = '') {
  const [lo, hi] = spread(values);
  return values.length > 1 ? `${fmt(median(values), digits)}${unit} [${fmt(lo, digits)}–${fmt(hi, digits)}]` : `${fmt(median(values), digits)}${unit}`;
}
const pct = (v: number) => `${fmt(v / 1e4, 0)}%`;

/** µs of CPU of `roles` per delivery. */
const cpuPerDelivery = (r: StepRecord, roles: Role[]) => roles.reduce((s, role) => s + r.cpuPerSec[role], 0) / r.lg.deliveriesPerSec;
/** µs of CPU of `roles` per acknowledged message. */
const cpuPerMessage = (r: StepRecord, roles: Role[]) => roles.reduce((s, role) => s + r.cpuPerSec[role], 0) / r.lg.ackedPerSec;

interface Target {
  label: string;
  target: string;
  measured: string;
  verdict: string;
}

/**
 * `met`, or `MISSED by …` with the distance to the bound; `n/a` when the phase did not run.
 * `atMost`: the bound is an upper bound (≤), else a lower one (≥).
 */
function judge(value: number, bound: number, atMost: boolean, unit: string, digits: number): string {
  if (!Number.isFinite(value)) return 'n/a';
  const ok = atMost ? value <= bound : value >= bound;
  if (ok) return 'met';
  const gap = Math.abs(value - bound);
  return `MISSED by ${fmt(gap, digits)}${unit} (${fmt((100 * gap) / bound, 0)}%)`;
}

export function buildReport(input: ReportInput): { table: string; markdown: string } {
  const { records, sat, history, idle, settings: S } = input;
  const fixed = (variant: Variant, share: number) => records.filter((r) => r.phase === 'fixed' && r.variant === variant && r.share === share);
  /** Per round, f(FULL) against f(other) at the same share, for the rounds that have both. */
  const perRound = (share: number, other: Variant, f: (full: StepRecord, o: StepRecord) => number) =>
    fixed('FULL', share).flatMap((full) => {
      const o = fixed(other, share).find((r) => r.round === full.round);
      return o ? [f(full, o)] : [];
    });
  const gatewayRatio = (share: number) => perRound(share, 'ADAPTER', (f, a) => cpuPerDelivery(f, ['gateways']) / cpuPerDelivery(a, ['adapter']));
  const cpu20 = gatewayRatio(0.2);
  const cpu50 = gatewayRatio(0.5);
  const thr = sat.full.flatMap((f) => {
    const a = sat.adapter.find((r) => r.round === f.round);
    return a ? [f.lg.deliveriesPerSec / a.lg.deliveriesPerSec] : [];
  });
  const pg50 = fixed('FULL', 0.5).map((r) => r.cpuPerSec.postgres / r.persistedPerSec);
  /** FULL's acknowledged msg/s at saturation, median over rounds (as ADAPTER's in `adapterMaxMsgs`). */
  const fullMaxMsgs = median(sat.full.map((r) => r.lg.ackedPerSec));
  const p50gap = perRound(0.5, 'ADAPTER', (f, a) => f.lg.latency.p50 - a.lg.latency.p50);
  const p99full = fixed('FULL', 0.5).map((r) => r.lg.latency.p99);
  /** Hot-room steps of FULL (HOT-n) or of ADAPTER (AHOT-n) with the room's senders on `pods` processes. */
  const hot = (pods: number, variant: 'FULL' | 'ADAPTER' = 'FULL') =>
    records.filter((r) => r.phase === 'hot' && r.group === `${variant === 'FULL' ? '' : 'A'}HOT-${pods}`);
  const hotRatioOf = (variant: 'FULL' | 'ADAPTER') =>
    hot(4, variant).flatMap((four) => {
      const two = hot(2, variant).find((r) => r.round === four.round);
      return two ? [four.lg.latency.p50 / two.lg.latency.p50] : [];
    });
  const hotRatio = hotRatioOf('FULL');
  const bigPages = history.filter((h) => h.big);
  const historyRatios = bigPages.map((h) => h.p.p99 / h.livez.p99);
  const historyRatio = historyRatios.length ? Math.max(...historyRatios) : Number.NaN;
  const rt = sat.full.map((r) => r.dbRoundTripsPerMsg);
  const rssKiB = idle.FULL ? idle.FULL.rssPerConn / 1024 : Number.NaN;
  const adapterUnsaturated = input.unsaturated.some((u) => u.startsWith('ADAPTER'));

  const targets: Target[] = [
    { label: 'gateway CPU per delivery FULL÷ADAPTER at 20% load', target: '≤ 1.25', measured: ms3(cpu20), verdict: judge(median(cpu20), 1.25, true, '', 2) },
    { label: 'gateway CPU per delivery FULL÷ADAPTER at 50% load', target: '≤ 1.15', measured: ms3(cpu50), verdict: judge(median(cpu50), 1.15, true, '', 2) },
    {
      label: 'deliveries/s at saturation FULL÷ADAPTER, fan-out 10',
      target: '≥ 0.85',
      measured: ms3(thr),
      // Against an ADAPTER that never saturated, the ratio flatters FULL: a pass is unproven.
      verdict: adapterUnsaturated && median(thr) >= 0.85 ? 'unproven (ADAPTER not saturated)' : judge(median(thr), 0.85, false, '', 2),
    },
    { label: 'Postgres CPU per message at 50% load', target: '≤ 30 µs', measured: ms3(pg50, 1, ' µs'), verdict: judge(median(pg50), 30, true, ' µs', 1) },
    { label: 'send→receive p50 at 50% load, FULL minus ADAPTER', target: '≤ 2 ms', measured: ms3(p50gap, 2, ' ms'), verdict: judge(median(p50gap), 2, true, ' ms', 2) },
    { label: 'send→receive p99 at 50% load, FULL', target: '≤ 20 ms', measured: ms3(p99full, 1, ' ms'), verdict: judge(median(p99full), 20, true, ' ms', 1) },
    { label: 'hot room p50, 4 pods ÷ 2 pods', target: '≤ 1.3', measured: ms3(hotRatio), verdict: judge(median(hotRatio), 1.3, true, '', 2) },
    {
      label: 'history page p99 at 1M messages ÷ /livez p99',
      target: '≤ 1.5',
      measured: `${fmt(historyRatio, 2)}${S.historyRows !== 1_000_000 ? ` (at ${fmtInt(S.historyRows)} messages)` : ''}`,
      verdict: judge(historyRatio, 1.5, true, '', 2),
    },
    { label: 'database round trips per message at saturation', target: '≤ 0.03', measured: ms3(rt, 3), verdict: judge(median(rt), 0.03, true, '', 3) },
    {
      label: 'RSS per idle connection',
      target: '≤ 16 KiB',
      measured: `${fmt(rssKiB, 1)} KiB${idle.FULL ? ` (${fmtInt(idle.FULL.n)} connections)` : ''}`,
      // A few thousand connections move RSS by less than the heap's own growth and shrinking.
      verdict: rssKiB > 0 ? judge(rssKiB, 16, true, ' KiB', 1) : 'n/a (below the noise)',
    },
  ];
  const head = ['figure', 'target', 'measured', 'verdict'];
  const cells = targets.map((t) => [t.label, t.target, t.measured, t.verdict]);
  const widths = head.map((h, c) => Math.max(h.length, ...cells.map((row) => row[c]!.length)));
  const line = (row: string[]) => row.map((cell, c) => cell.padEnd(widths[c]!)).join(' | ');
  const table = [line(head), widths.map((w) => '-'.repeat(w)).join('-|-'), ...cells.map(line)].join('\n');

  const md: string[] = [];
  const m = input.machine;
  md.push('# Benchmarks', '');
  md.push(`Generated by \`pnpm bench${input.quick ? ' --quick' : ''}\` on ${m.date} in ${fmt(input.elapsedMs / 60000, 1)} min${input.budgetHit ? ' (time budget reached: later phases skipped)' : ''}.`, '');

  md.push('## Machine', '');
  md.push(`- CPU: ${m.cpu}${m.mhz ? ` @ ${m.mhz} MHz` : ''}; \`nproc\` = ${m.nproc}; memory ${m.memGiB} GiB (${m.freeGiB} GiB free at start); Node ${m.node}; open files ${m.ulimitBoth}.`);
  md.push(`- Load average at start: ${m.loadavg}; at the end: ${input.loadAtEnd}.`);
  md.push(`- A one-row durable commit on this Postgres (the least any acknowledged send waits): p50 ${ms(input.commitFloor[0].p50)}, p99 ${ms(input.commitFloor[0].p99)} at the start; p50 ${ms(input.commitFloor[1].p50)}, p99 ${ms(input.commitFloor[1].p99)} at the end.`);
  md.push('- Everything on 127.0.0.1: Postgres 15 (shared instance, private database `chat_bench_*`, dropped at the end; `synchronous_commit = on`), a private `redis-server` on a free port, the processes below.');
  md.push(
    '- **Noise.** This machine is shared with other jobs, whose load comes and goes within seconds. Absolute figures (µs, ms, msg/s) move by tens of percent between runs and even between rounds; only ratios of variants measured seconds apart in the same round are worth comparing, and even those by their median over rounds.',
    '',
  );

  md.push('## Method', '');
  md.push(`- FULL = two real gateway processes (\`apps/gateway/src/main.ts\` as it ships: \`pnpm build\`'s bundle, \`node --enable-source-maps dist/gateway.mjs\`; the sharded Redis adapter, group commit, auth, rate limit) + the worker. ADAPTER = two plain Socket.IO 4.8 processes (\`test/bench/bare-server.ts\`) joined through \`@socket.io/redis-adapter\`'s sharded adapter (dynamic per-room subscriptions, as the gateways) on the same private Redis: the cluster design with none of the gateway's work. In both, every room has ${S.fanout} members, half on each process. BARE = the same plain process without the adapter, each room local to one process, for reference only.`);
  md.push(`- The load generator (\`test/bench/loadgen.ts\`) is its own process: a minimal Engine.IO v4 / Socket.IO v5 speaker over \`ws\`. ${S.rooms} rooms; every member sends \`send-message\` with an ack, round robin, at the offered rate, skipping sends while ${S.maxOutstanding} acks are outstanding (${S.saturationOutstanding} in the saturation climb, so that a variant whose acks wait for a durable commit is stopped by the server, not by the client's window). Latency = receive time − send time carried in the message content (same process clock), over every delivery.`);
  md.push(`- **Saturation**: FULL and ADAPTER climb the offered rates ${S.ladder.map(fmtInt).join(', ')} msg/s, taking turns at each rate (order alternating), ${fmt(S.warmupMs / 1000, 1)} s warm-up + ${fmt(S.windowMs / 1000, 1)} s window each, until a step both acknowledges less than ${Math.round(S.saturatedShare * 100)}% of its offered rate and adds under 3% to its best deliveries/s. A variant's saturation is its step with the most deliveries/s in the round. ${S.rounds} round(s).`);
  md.push(`- **Fixed loads**: ${S.shares.map((s) => `${s * 100}%`).join(' and ')} of ADAPTER's saturation (median of its acknowledged msg/s over rounds: ${fmtInt(input.adapterMaxMsgs)} msg/s), i.e. ${S.shares.map((s) => fmtInt(input.adapterMaxMsgs * s)).join(' and ')} msg/s (${S.shares.map((s) => `${fmt((100 * input.adapterMaxMsgs * s) / fullMaxMsgs, 0)}%`).join(' and ')} of FULL's own saturation in this run, ${fmtInt(fullMaxMsgs)} msg/s: how close to its ceiling FULL runs there), FULL, ADAPTER and BARE back to back in rotating order, ${fmt(S.fixedWindowMs / 1000, 1)} s windows; ${S.rounds} round(s). Ratios and differences are taken within a round, then median [min–max] over rounds.`);
  md.push(`- **Hot room**: two more gateways are started (four in all), and two more ADAPTER processes. Two rooms of ${S.hotMembers} members each per variant, every member sending: one room's members spread over 2 processes, the other's over 4; ${fmtInt(S.hotRate)} msg/s offered to one room at a time, FULL's and ADAPTER's in rotating order, ${S.rounds} round(s), after a few seconds of each unmeasured (the new processes' code is not JIT-compiled yet).`);
  md.push('- CPU from `/proc/<pid>/stat` (utime+stime): "gateway CPU" is the two gateway processes for FULL and the two adapter processes for ADAPTER; Postgres is every backend connected to the bench database plus the walwriter (found in `pg_stat_activity`), per persisted message.');
  md.push('- Database round trips are counted by a TCP relay between the gateways and Postgres (a client→server burst after a server reply = one round trip; pipelined statements count once); it adds one loopback hop to every FULL query. Redis commands from `INFO commandstats` deltas on the private Redis; a MONITOR audit classifies them.');
  md.push(`- History: ${fmtInt(S.historyRows)} messages in one room, then ${fmtInt(S.historyRequests)} sequential page requests per case (keep-alive, measured at the client), each followed by a \`/livez\` request on the same connection; the target divides the worst case's page p99 by the \`/livez\` p99 of the same loop.`, '');

  md.push('## Targets (issue 17)', '', '| figure | target | measured | verdict |', '|---|---|---|---|');
  for (const row of cells) md.push(`| ${row.join(' | ')} |`);
  md.push('', 'Measured: median [min–max] over rounds, each ratio or difference taken within one round.', '');

  /** Each fixed load's steps per variant, in table order. */
  const fixedGroups = S.shares.flatMap((share) =>
    (['FULL', 'ADAPTER', 'BARE'] as const).flatMap((variant) => {
      const list = fixed(variant, share);
      return list.length ? [{ share, variant, list, own: SERVER_ROLE[variant], isFull: variant === 'FULL' }] : [];
    }),
  );
  md.push('## Fixed loads (fan-out 10)', '');
  md.push('| load | variant | acked msg/s | deliveries/s | send→receive p50 / p95 / p99 | ack p50 / p99 | gateway CPU µs/delivery | gateway CPU µs/message | Postgres µs/message | Redis µs/message | batches/s × messages, ms each |', '|---|---|---|---|---|---|---|---|---|---|---|');
  for (const { share, variant, list, own, isFull } of fixedGroups) {
    md.push(
      `| ${share * 100}% (${fmtInt(list[0]!.rate)} msg/s) | ${variant} | ${ms3(list.map((r) => r.lg.ackedPerSec), 0)} | ${ms3(list.map((r) => r.lg.deliveriesPerSec), 0)} | ` +
        `${ms3(list.map((r) => r.lg.latency.p50))} / ${ms3(list.map((r) => r.lg.latency.p95), 1)} / ${ms3(list.map((r) => r.lg.latency.p99), 1)} ms | ` +
        `${ms3(list.map((r) => r.lg.ack.p50))} / ${ms3(list.map((r) => r.lg.ack.p99), 1)} ms | ${ms3(list.map((r) => cpuPerDelivery(r, [own])), 1)} | ${ms3(list.map((r) => cpuPerMessage(r, [own])), 0)} | ` +
        `${isFull ? ms3(list.map((r) => r.cpuPerSec.postgres / r.persistedPerSec), 0) : '—'} | ${variant === 'BARE' ? '—' : ms3(list.map((r) => cpuPerMessage(r, ['redis'])), 1)} | ` +
        `${isFull ? `${ms3(list.map((r) => r.batchesPerSec), 0)} × ${ms3(list.map((r) => r.batchSize), 1)}, ${ms3(list.map((r) => r.batchMs), 2)}` : '—'} |`,
    );
  }
  md.push('');
  md.push(`Gateway CPU per delivery FULL÷ADAPTER: ${S.shares.map((s) => `${s * 100}% ${ms3(gatewayRatio(s))}`).join(', ')}; ADAPTER÷BARE (what the design costs): ${S.shares.map((s) => `${s * 100}% ${ms3(fixed('ADAPTER', s).flatMap((a) => { const b = fixed('BARE', s).find((r) => r.round === a.round); return b ? [cpuPerDelivery(a, ['adapter']) / cpuPerDelivery(b, ['bare'])] : []; }))}`).join(', ')}.`, '');
  // FULL's extra CPU per message, and the same split into a cost per batch and a cost per
  // message: within a round, two loads with different batch sizes give two equations.
  const extraPerMessage = (share: number) => perRound(share, 'ADAPTER', (f, a) => cpuPerMessage(f, ['gateways']) - cpuPerMessage(a, ['adapter']));
  const [low, high] = S.shares;
  const split = low === undefined || high === undefined ? [] : fixed('FULL', low).flatMap((fullLow) => {
    const round = (variant: Variant, share: number) => fixed(variant, share).find((r) => r.round === fullLow.round);
    const [adapterLow, fullHigh, adapterHigh] = [round('ADAPTER', low), round('FULL', high), round('ADAPTER', high)];
    if (!adapterLow || !fullHigh || !adapterHigh || !(fullLow.batchSize > 0) || !(fullHigh.batchSize > fullLow.batchSize)) return [];
    const extraLow = cpuPerMessage(fullLow, ['gateways']) - cpuPerMessage(adapterLow, ['adapter']);
    const extraHigh = cpuPerMessage(fullHigh, ['gateways']) - cpuPerMessage(adapterHigh, ['adapter']);
    const perBatch = (extraLow - extraHigh) / (1 / fullLow.batchSize - 1 / fullHigh.batchSize);
    return [{ perBatch, perMessage: extraLow - perBatch / fullLow.batchSize }];
  });
  md.push(
    `FULL's gateway CPU per message minus ADAPTER's: ${S.shares.map((s) => `${s * 100}% ${ms3(extraPerMessage(s), 0)} µs`).join(', ')}` +
      (split.length
        ? `; as a cost per batch plus a cost per message (fitted within each round over the two loads' batch sizes): ${ms3(split.map((x) => x.perBatch), 0)} µs per batch, ${ms3(split.map((x) => x.perMessage), 0)} µs per message.`
        : '.'),
    '',
  );

  md.push('### Waiting for a CPU at the fixed loads', '');
  md.push(
    'Time runnable but not running (run queue, from each thread\'s `/proc/<pid>/task/<tid>/schedstat`), per second of the window, and the share of the window in which some task on the machine waited for a CPU (`/proc/pressure/cpu`, "some"). Every hop of a message from one process to another waits there before the next process handles it.',
    '',
  );
  md.push('| load | variant | CPU pressure (some) | server processes: on CPU / waiting, ms per s | Postgres waiting, ms per s | Redis waiting | load generator waiting | server processes waiting per message |', '|---|---|---|---|---|---|---|---|');
  for (const { share, variant, list, own, isFull } of fixedGroups) {
    md.push(
      `| ${share * 100}% | ${variant} | ${ms3(list.map((r) => 100 * r.cpuPressure), 0, '%')} | ${ms3(list.map((r) => r.cpuPerSec[own] / 1000), 0)} / ${ms3(list.map((r) => r.runQueuePerSec[own] / 1000), 0)} | ` +
        `${isFull ? ms3(list.map((r) => r.runQueuePerSec.postgres / 1000), 0) : '—'} | ${variant === 'BARE' ? '—' : ms3(list.map((r) => r.runQueuePerSec.redis / 1000), 0)} | ${ms3(list.map((r) => r.runQueuePerSec.loadgen / 1000), 0)} | ` +
        `${ms3(list.map((r) => r.runQueuePerSec[own] / r.lg.ackedPerSec), 0)} µs |`,
    );
  }
  md.push('');

  md.push('## Saturation (fan-out 10)', '');
  md.push('| variant | deliveries/s | messages acked/s | gateway CPU µs/delivery | + worker, Redis, Postgres (FULL); + Redis (ADAPTER) | kernel share | DB round trips / message | Redis commands / message | loadgen CPU |', '|---|---|---|---|---|---|---|---|---|');
  const services: Record<'FULL' | 'ADAPTER', Role[]> = { FULL: ['gateways', 'worker', 'redis', 'postgres'], ADAPTER: ['adapter', 'redis'] };
  for (const [variant, list] of [['FULL', sat.full], ['ADAPTER', sat.adapter]] as const) {
    if (!list.length) continue;
    const own = SERVER_ROLE[variant];
    md.push(
      `| ${variant} | ${ms3(list.map((r) => r.lg.deliveriesPerSec), 0)} | ${ms3(list.map((r) => r.lg.ackedPerSec), 0)} | ${ms3(list.map((r) => cpuPerDelivery(r, [own])), 1)} | ${ms3(list.map((r) => cpuPerDelivery(r, services[variant])), 1)} | ` +
        `${ms3(list.map((r) => (100 * r.sysPerSec[own]) / r.cpuPerSec[own]), 0, '%')} | ${variant === 'FULL' ? ms3(list.map((r) => r.dbRoundTripsPerMsg), 3) : '—'} | ${variant === 'FULL' ? ms3(list.map((r) => r.redisPerMsg), 2) : '—'} | ${ms3(list.map((r) => r.cpuPerSec.loadgen / 1e4), 0, '%')} |`,
    );
  }
  if (input.unsaturated.length) md.push('', `**Not saturated at the top offered rate** (a lower bound on its capacity): ${input.unsaturated.join('; ')}.`);
  if (sat.full[0]?.redisTop.length) md.push('', `Redis commands per message at FULL's saturation, round 1 (INFO commandstats, commands run inside scripts included): ${sat.full[0].redisTop.map(([n, v]) => `${n} ${fmt(v, 3)}`).join(', ')}.`);
  md.push('');

  md.push('## Hot room', '');
  md.push('| variant | senders on | offered msg/s | acked msg/s | deliveries/s | send→receive p50 / p99 | ack p50 / p99 | batches/s × messages, ms each | backends waiting on a lock (mean) | CPU of its four processes | Postgres CPU | CPU pressure (some) |', '|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const variant of ['FULL', 'ADAPTER'] as const) {
    for (const pods of [2, 4]) {
      const list = hot(pods, variant);
      if (!list.length) continue;
      const full = variant === 'FULL';
      md.push(
        `| ${variant} | ${pods} ${full ? 'gateways' : 'processes'} | ${fmtInt(list[0]!.rate)} | ${ms3(list.map((r) => r.lg.ackedPerSec), 0)} | ${ms3(list.map((r) => r.lg.deliveriesPerSec), 0)} | ${ms3(list.map((r) => r.lg.latency.p50))} / ${ms3(list.map((r) => r.lg.latency.p99), 1)} ms | ` +
          `${ms3(list.map((r) => r.lg.ack.p50))} / ${ms3(list.map((r) => r.lg.ack.p99), 1)} ms | ${full ? `${ms3(list.map((r) => r.batchesPerSec), 0)} × ${ms3(list.map((r) => r.batchSize), 1)}, ${ms3(list.map((r) => r.batchMs), 2)}` : '—'} | ${full ? ms3(list.map((r) => r.lockWaiting), 2) : '—'} | ` +
          `${ms3(list.map((r) => serverCpuPerSec(r) / 1e4), 0, '%')} | ${full ? ms3(list.map((r) => r.cpuPerSec.postgres / 1e4), 0, '%') : '—'} | ${ms3(list.map((r) => 100 * r.cpuPressure), 0, '%')} |`,
      );
    }
  }
  const adapterHotRatio = hotRatioOf('ADAPTER');
  if (adapterHotRatio.length) {
    md.push(
      '',
      `p50 with the senders on 4 processes ÷ on 2, within a round: FULL ${ms3(hotRatio)}, ADAPTER ${ms3(adapterHotRatio)} (the cluster design alone: every process with a member of the room receives every message from the bus, so 4 processes decode each message twice as often as 2, on the same 2 cores).`,
    );
  }
  md.push('');

  if (input.audit) {
    const a = input.audit;
    const perMsg = Object.entries(a.perMessage).filter(([, v]) => v >= 0.05);
    const background = Object.entries(a.perSecond).filter(([k]) => (a.perMessage[k] ?? 0) < 0.05);
    const sent = Object.entries(a.perMessage).filter(([k]) => !k.startsWith('(in Lua)')).reduce((s2, [, v]) => s2 + v, 0);
    md.push('## Redis per message (MONITOR audit, FULL at 20% load)', '');
    md.push(`- ${fmtInt(a.messages)} messages in ${fmt(a.seconds, 1)} s. Per message (≥ 0.05): ${perMsg.map(([k, v]) => `\`${k}\` ${fmt(v, 3)}`).join(', ')}.`);
    md.push(`- Commands sent by clients per message (Lua internals excluded): ${fmt(sent, 2)}.`);
    md.push(`- Below 0.05 per message, as a rate (background: worker jobs, presence): ${background.slice(0, 12).map(([k, v]) => `\`${k}\` ${fmt(v, 1)}/s`).join(', ') || 'none'}${background.length > 12 ? `, and ${background.length - 12} more` : ''}.`, '');
  }

  md.push('## Idle connections', '');
  for (const variant of ['FULL', 'BARE'] as const) {
    const v = idle[variant];
    if (v) md.push(`- ${variant}: ${fmtInt(v.n)} connections over two processes (connected in ${fmt(v.connectMs / 1000, 1)} s): RSS ${fmt(v.rssPerConn / 1024, 1)} KiB and V8 heap ${fmt(v.heapPerConn / 1024, 1)} KiB per connection (after a full GC, via the inspector).`);
  }
  if (input.idleN < 10_000) md.push(`- ${fmtInt(input.idleN)} connections, not 10k: ${input.quick ? 'quick mode' : `the open-files limit (${m.ulimitBoth}) leaves no room for more`}.`);
  md.push('');

  md.push('## History page (`GET /api/rooms/:id/messages?limit=50`, keep-alive, sequential, measured at the client)', '');
  if (Number.isFinite(input.historyInsertMs)) md.push(`Rows inserted with one \`INSERT … SELECT generate_series\` in ${fmt(input.historyInsertMs / 1000, 1)} s, then VACUUM ANALYZE (as autovacuum would have done on a table in service).`, '');
  md.push('| case | p50 | p95 | p99 | `/livez` p50 / p99, same loop | page p99 ÷ `/livez` p99 |', '|---|---|---|---|---|---|');
  for (const h of history) md.push(`| ${h.label} | ${ms(h.p.p50)} | ${ms(h.p.p95)} | ${ms(h.p.p99)} | ${ms(h.livez.p50)} / ${ms(h.livez.p99)} | ${fmt(h.p.p99 / h.livez.p99, 2)} |`);
  md.push('');

  if (input.purge) {
    const p = input.purge;
    const mib = (bytes: number) => `${fmt(bytes / 2 ** 20, 1)} MiB`;
    md.push('## Purging a day of messages (issue 17, point 3)', '');
    md.push(`${fmtInt(p.rows)} messages of one expiry day (${fmtInt(p.rows / ROWS_PER_ROOM)} rooms of ${fmtInt(ROWS_PER_ROOM)}, half with a \`clientMessageId\`), written by \`INSERT … SELECT\` in ${fmt(p.writeMs / 1000, 1)} s into a throw-away database, then purged as the worker's partition job purges a day once every room in it has expired (\`dropIfExpired\`: the day's partition dropped). Size: \`pg_total_relation_size\` over every partition of \`messages\` (heap, indexes, TOAST).`, '');
    md.push('| method | purge time | `messages` size before | after |', '|---|---|---|---|');
    md.push(`| DROP of the day's partition | ${fmt(p.dropMs / 1000, 3)} s | ${mib(p.bytesBefore)} | ${mib(p.bytesAfter)} |`, '');
    md.push('The way it was done before partitions, a batched `DELETE` per room, takes minutes per million rows and gives back little space without `VACUUM`: `pnpm bench:purge` measures both side by side (figures and the reasons in docs/partitions.md).', '');
  }

  if (input.profile) {
    const p = input.profile;
    md.push(`## Profile: gateway-0 at 50% load (${fmtInt(p.rate)} msg/s, ${fmt(p.totalMs / 1000, 1)} s, inspector CPU profile, self time)`, '');
    md.push('| area | self % |', '|---|---|');
    for (const a of p.byArea) md.push(`| ${a.area} | ${fmt(a.selfPct, 1)} |`);
    md.push('', '| function | where | self % |', '|---|---|---|');
    for (const f of p.top) md.push(`| \`${f.name}\` | ${f.where} | ${fmt(f.selfPct, 1)} |`);
    md.push('');
  }

  md.push('## All steps', '', '| phase | group | round | offered msg/s | acked msg/s | deliveries/s | p50 / p99 ms | server CPU | redis | postgres | batches/s × size | loadgen |', '|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of records) {
    const server = serverCpuPerSec(r);
    const full = r.variant === 'FULL';
    md.push(
      `| ${r.phase}${r.share !== null ? ` ${r.share * 100}%` : ''} | ${r.group} | ${r.round} | ${fmtInt(r.rate)} | ${fmtInt(r.lg.ackedPerSec)} | ${fmtInt(r.lg.deliveriesPerSec)} | ${fmt(r.lg.latency.p50, 2)} / ${fmt(r.lg.latency.p99, 1)} | ` +
        `${pct(server)} | ${r.variant === 'BARE' ? '—' : pct(r.cpuPerSec.redis)} | ${full ? pct(r.cpuPerSec.postgres) : '—'} | ${full ? `${fmt(r.batchesPerSec, 0)} × ${fmt(r.batchSize, 1)}` : '—'} | ${pct(r.cpuPerSec.loadgen)} |`,
    );
  }
  return { table, markdown: md.join('\n') };
}
