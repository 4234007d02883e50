/**
 * `pnpm test:faults` — the fault suite (issue 6). Starts a private Postgres and Redis, two
 * gateway processes (N with --pods=N) and the worker, runs every scenario under load, runs the
 * protocol fuzzer, prints the table and exits non-zero if anything was lost, duplicated or left
 * incomplete.
 *
 *   pnpm test:faults               every scenario + 60 s of fuzzing (about 10 minutes)
 *   pnpm test:faults -- --quick    a short local subset (CI runs every scenario) + 20 s of fuzzing (about 4 minutes)
 *   pnpm test:faults -- --only=3a  scenarios whose name contains "3a" (and no fuzzer)
 *   --keep                         keep the temporary directory (logs, op log) afterwards
 *   --bus=cluster                  the Socket.IO bus on a private three-master Redis Cluster
 *                                  (state stays on the private Redis); adds scenario 7, a bus
 *                                  master killed and restarted
 *   --state=cluster                with --bus=cluster: the state on that cluster too; adds
 *                                  scenario 9, the state's master killed and restarted
 *   --pods=N                       N gateway processes, 2 to 4 (default 2): senders, observers
 *                                  and the crowd spread over all N, scenario 6 restarts all N
 *                                  (a by-hand run; CI runs 2). --quick --pods=4: 150 s here
 */
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { Cluster } from './cluster.ts';
import { runFuzzer, type FuzzResult } from './fuzzer.ts';
import { killAll, makeWorkDir, removeWorkDir } from './infra.ts';
import { runScenario, SCENARIOS, type ScenarioResult } from './scenarios.ts';

const args = process.argv.slice(2).filter((arg) => arg !== '--');
const quick = args.includes('--quick');
const keep = args.includes('--keep');
const only = args.find((arg) => arg.startsWith('--only='))?.slice('--only='.length);
const busArg = args.find((arg) => arg.startsWith('--bus='))?.slice('--bus='.length) ?? 'standalone';
if (busArg !== 'standalone' && busArg !== 'cluster') {
  process.stdout.write(`--bus takes standalone or cluster, not "${busArg}"\n`);
  process.exit(2);
}
const bus: 'standalone' | 'cluster' = busArg;
const stateArg = args.find((arg) => arg.startsWith('--state='))?.slice('--state='.length) ?? 'standalone';
if ((stateArg !== 'standalone' && stateArg !== 'cluster') || (stateArg === 'cluster' && bus !== 'cluster')) {
  process.stdout.write(`--state takes standalone or cluster (cluster with --bus=cluster), not "${stateArg}"\n`);
  process.exit(2);
}
const state: 'standalone' | 'cluster' = stateArg;
const podsArg = args.find((arg) => arg.startsWith('--pods='))?.slice('--pods='.length) ?? '2';
if (!/^[2-4]$/.test(podsArg)) {
  process.stdout.write(`--pods takes 2, 3 or 4, not "${podsArg}"\n`);
  process.exit(2);
}
const pods = Number(podsArg);
const crowdArg = args.find((arg) => arg.startsWith('--crowd='))?.slice('--crowd='.length);
const fuzzMs = Number(args.find((arg) => arg.startsWith('--fuzz-seconds='))?.slice(15) ?? (quick ? 20 : 60)) * 1000;
const HARD_LIMIT_MS = quick ? 8 * 60_000 : 20 * 60_000;

const workDir = makeWorkDir();
const opLog = createWriteStream(join(workDir, 'operations.jsonl'));
const log = (entry: object) => opLog.write(`${JSON.stringify(entry)}\n`);
const say = (line: string) => process.stdout.write(`${line}\n`);

let cluster: Cluster | null = null;
let cleaning: Promise<void> | null = null;
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    await cluster?.close().catch(() => undefined);
    await killAll();
    opLog.end();
    if (!keep) removeWorkDir(workDir);
  })();
  return cleaning;
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void cleanup().then(() => process.exit(130)));
}
const hardLimit = setTimeout(() => {
  say(`fault suite: hard time limit of ${HARD_LIMIT_MS / 60_000} min reached, aborting`);
  void cleanup().then(() => process.exit(2));
}, HARD_LIMIT_MS);
hardLimit.unref();

function pad(text: string, width: number, right = false) {
  const length = [...text].length;
  return right ? ' '.repeat(Math.max(0, width - length)) + text : text + ' '.repeat(Math.max(0, width - length));
}

function table(results: ScenarioResult[], fuzz: FuzzResult | null): string {
  const header = ['scenario', 'operations', 'acknowledged', 'lost', 'duplicated', 'unknown', 'recovery', 'observers', 'result'];
  const rows = results.map((r) => [
    r.name,
    String(r.operations),
    String(r.acknowledged),
    String(r.lost),
    String(r.duplicated),
    String(r.unknown),
    r.recoveryMs === null ? '—' : `${(r.recoveryMs / 1000).toFixed(1)} s`,
    `${r.observers - r.observersIncomplete}/${r.observers}`,
    r.ok ? 'ok' : 'FAIL',
  ]);
  if (fuzz) rows.push(['fuzzer', String(fuzz.inputs), '0', '0', '0', '0', '—', '—', fuzz.violations.length === 0 ? 'ok' : 'FAIL']);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => [...row[i]!].length)));
  const line = (cells: string[]) => cells.map((cell, i) => pad(cell, widths[i]!, i > 0 && i < 7)).join(' | ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('-|-'), ...rows.map(line)].join('\n');
}

async function main(): Promise<number> {
  const started = Date.now();
  say(`fault suite (${quick ? 'quick' : only ? `only ${only}` : 'full'}, ${pods} pods, ${bus} bus, ${state} state) — work dir ${workDir}`);
  cluster = await Cluster.start(workDir, { bus, state, pods });
  say(
    `cluster up in ${((Date.now() - started) / 1000).toFixed(1)} s: postgres :${cluster.pg.port}, redis :${cluster.redis.port}, ` +
      `${cluster.busCluster ? `bus cluster ${cluster.busCluster.nodesString}, ` : ''}gateways :${cluster.ports.join(', :')}`,
  );

  const selected = SCENARIOS.filter((spec) => (spec.bus === undefined || spec.bus === bus) && (spec.state === undefined || spec.state === state)).filter((spec) => (only ? spec.name.includes(only) : quick ? spec.quick : true)).map((spec) =>
    crowdArg && spec.crowd ? { ...spec, crowd: Number(crowdArg) } : spec,
  );
  const results: ScenarioResult[] = [];
  for (const spec of selected) {
    say(`\n▶ ${spec.name}`);
    const result = await runScenario(cluster, spec, (entry) => log({ scenario: spec.name, ...entry }));
    results.push(result);
    say(`  ${result.ok ? 'ok' : 'FAIL'} in ${(result.durationMs / 1000).toFixed(1)} s — ops ${result.operations}, acked ${result.acknowledged}, lost ${result.lost}, duplicated ${result.duplicated}, unknown ${result.unknown}` +
      (result.maxUnavailableMs === null ? '' : `, slowest UNAVAILABLE ${result.maxUnavailableMs} ms`));
    for (const note of [...result.notes, ...result.problems.slice(0, 10)]) say(`    ${note}`);
  }

  let fuzz: FuzzResult | null = null;
  if (!only || 'fuzzer'.includes(only)) {
    say(`\n▶ fuzzer (${fuzzMs / 1000} s)`);
    fuzz = await runFuzzer(cluster, fuzzMs);
    say(`  ${fuzz.violations.length === 0 ? 'ok' : 'FAIL'} — ${fuzz.inputs} inputs: ${Object.entries(fuzz.counts).map(([k, v]) => `${k} ${v}`).join(', ')}`);
    for (const violation of fuzz.violations) say(`    ${violation}`);
  }

  say(`\n${pods} pods, ${bus} bus, ${state} state\n${table(results, fuzz)}`);
  say(`\ntotal ${((Date.now() - started) / 1000).toFixed(0)} s${keep ? `; logs and operations.jsonl in ${workDir}` : ''}`);
  const failed = results.some((r) => !r.ok) || (fuzz !== null && fuzz.violations.length > 0);
  return failed ? 1 : 0;
}

main().then(
  async (code) => {
    await cleanup();
    process.exit(code);
  },
  async (error: unknown) => {
    say(`fault suite crashed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    await cleanup();
    process.exit(1);
  },
);
