/**
 * `pnpm test:alerts`: the alerts of k8s/base/prometheusrule.yaml through Prometheus's own rule
 * engine. Writes the PrometheusRule's groups to a rules file, then runs `promtool check rules`
 * and `promtool test rules` on test/alerts/chat-alerts.test.yml. Every alert must have a case
 * in which it fires.
 *
 * promtool: see ./promtool.ts (PATH, or Debian's `prometheus` package unpacked, not installed).
 *
 * The unit-test copy of the rules keeps only the `summary` annotation: promtool compares every
 * annotation of an alert, and the others are fixed text that the manifests test checks already.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { findPromtool } from './promtool.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const rulesPath = path.join(root, 'k8s/base/prometheusrule.yaml');
const testsPath = path.join(root, 'test/alerts/chat-alerts.test.yml');

interface Rule {
  alert: string;
  expr: string;
  annotations?: Record<string, string>;
  [key: string]: unknown;
}
interface RuleTests {
  tests: { alert_rule_test?: { alertname: string; exp_alerts: unknown[] }[] }[];
}

function main(): number {
  const manifest = parseYaml(readFileSync(rulesPath, 'utf8')) as { spec: { groups: { name: string; rules: Rule[] }[] } };
  const groups = manifest.spec.groups.map((group) => ({
    ...group,
    rules: group.rules.map((rule) => ({
      ...rule,
      annotations: rule.annotations?.summary === undefined ? {} : { summary: rule.annotations.summary },
    })),
  }));

  // Every alert has a case where it fires, not only cases where it stays quiet.
  const tests = parseYaml(readFileSync(testsPath, 'utf8')) as RuleTests;
  const firing = new Set(
    tests.tests.flatMap((test) => (test.alert_rule_test ?? []).filter((t) => t.exp_alerts.length > 0).map((t) => t.alertname)),
  );
  const untested = groups.flatMap((group) => group.rules.map((rule) => rule.alert)).filter((alert) => !firing.has(alert));
  if (untested.length > 0) {
    process.stderr.write(`alerts without a firing case in ${path.relative(root, testsPath)}: ${untested.join(', ')}\n`);
    return 1;
  }

  const promtool = findPromtool();
  const dir = mkdtempSync(path.join(tmpdir(), 'chat-alerts-'));
  try {
    writeFileSync(path.join(dir, 'rules.yml'), stringifyYaml({ groups }));
    writeFileSync(path.join(dir, 'tests.yml'), readFileSync(testsPath, 'utf8'));
    for (const args of [['check', 'rules', 'rules.yml'], ['test', 'rules', 'tests.yml']]) {
      const run = spawnSync(promtool, args, { cwd: dir, stdio: 'inherit' });
      if (run.status !== 0) return run.status ?? 1;
    }
    return 0;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

process.exitCode = main();
