import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { parser as promql } from '@prometheus-io/lezer-promql';
import { JOB_CATALOG } from '@chat/jobs';
import { CLIENT_EVENTS, ERRORS } from '@chat/protocol';
import { createGatewayMetrics } from '../../apps/gateway/src/metrics.ts';
import { createWorkerMetrics } from '../../apps/worker/src/metrics.ts';

/**
 * The alerts (k8s/base/prometheusrule.yaml) and the dashboard (infra/grafana/dashboard.json)
 * query series by name and by label: each name must be one the apps export, and each label one
 * the series carries once scraped, with values the apps write. A label the apps renamed, or one
 * the scrape overwrites, made an alert silently never fire (or fire for the wrong thing).
 */
const root = fileURLToPath(new URL('../..', import.meta.url));
const read = (file: string) => readFileSync(path.join(root, file), 'utf8');

/* eslint-disable @typescript-eslint/no-explicit-any */
type Any = any;

/**
 * Labels the scrape puts on every series: the Prometheus Operator's ServiceMonitor (job,
 * instance, namespace, service, pod, container, endpoint = the port's name) and
 * infra/prometheus.yml (job, instance, pod). Without honorLabels a metric's own label of one of
 * these names is renamed `exported_<name>` and the target's value takes its place.
 */
const TARGET_LABELS = ['job', 'instance', 'namespace', 'service', 'pod', 'container', 'endpoint'];

/** Every series name the apps export, with its labels (a histogram's _bucket has `le`). */
function exportedSeries(): Map<string, string[]> {
  const series = new Map<string, string[]>();
  for (const { registry } of [createGatewayMetrics(), createWorkerMetrics()]) {
    for (const metric of registry.getMetricsAsArray() as Any[]) {
      const labels: string[] = [...(metric.labelNames ?? [])];
      series.set(metric.name, labels);
      if (metric.constructor.name === 'Histogram') {
        series.set(`${metric.name}_bucket`, [...labels, 'le']);
        series.set(`${metric.name}_sum`, labels);
        series.set(`${metric.name}_count`, labels);
      }
    }
  }
  series.set('up', []);
  return series;
}
const series = exportedSeries();

/** The values the apps write for a label (where the set is closed), to check matchers against. */
const LABEL_VALUES: Record<string, readonly string[]> = {
  queue: Object.values(JOB_CATALOG).map((entry) => entry.queue),
  code: Object.keys(ERRORS),
  event: Object.values(CLIENT_EVENTS),
  client: ['commands', 'pub', 'sub'],
};

interface Query {
  where: string;
  expr: string;
}

function queries(): Query[] {
  const rules = (parseYaml(read('k8s/base/prometheusrule.yaml')) as Any).spec.groups.flatMap((group: Any) => group.rules);
  const dashboard = JSON.parse(read('infra/grafana/dashboard.json')) as Any;
  return [
    ...rules.map((rule: Any) => ({ where: `alert ${rule.alert}`, expr: String(rule.expr) })),
    ...dashboard.panels.flatMap((panel: Any) => (panel.targets ?? []).map((target: Any) => ({ where: `panel "${panel.title}"`, expr: String(target.expr) }))),
  ];
}

/** The selectors of an expression (name, matchers) and its grouping labels (by / on / ignoring). */
function parse(expr: string): { selectors: { name: string; matchers: { label: string; op: string; value: string }[] }[]; grouping: string[] } {
  const selectors: { name: string; matchers: { label: string; op: string; value: string }[] }[] = [];
  const grouping: string[] = [];
  const text = (node: { from: number; to: number }) => expr.slice(node.from, node.to);
  promql.parse(expr).iterate({
    enter(node) {
      if (node.name === 'VectorSelector') {
        const identifier = node.node.getChild('Identifier');
        const matchers = node.node.getChild('LabelMatchers')?.getChildren('UnquotedLabelMatcher') ?? [];
        selectors.push({
          name: identifier ? text(identifier) : '',
          matchers: matchers.map((matcher) => ({
            label: text(matcher.getChild('LabelName')!),
            op: text(matcher.getChild('MatchOp')!),
            value: JSON.parse(text(matcher.getChild('StringLiteral')!)) as string,
          })),
        });
      }
      if (node.name === 'GroupingLabels') for (const label of node.node.getChildren('LabelName')) grouping.push(text(label));
    },
  });
  return { selectors, grouping };
}

describe('metric labels', () => {
  it('no app metric has a label the scrape sets (it would be renamed exported_<label>)', () => {
    for (const [name, labels] of series) {
      expect(labels.filter((label) => TARGET_LABELS.includes(label)), name).toEqual([]);
    }
  });

  const all = queries();

  it('the alerts and the dashboard query series the apps export, by labels those series carry', () => {
    expect(all.length).toBeGreaterThan(25);
    for (const { where, expr } of all) {
      const { selectors, grouping } = parse(expr);
      const carried = new Set(TARGET_LABELS);
      for (const selector of selectors) {
        if (selector.name.startsWith('nodejs_')) continue; // prom-client's default metrics
        const labels = series.get(selector.name);
        expect(labels, `${where}: ${selector.name} is not exported`).toBeDefined();
        for (const label of labels!) carried.add(label);
        for (const matcher of selector.matchers) {
          expect([...TARGET_LABELS, ...labels!], `${where}: ${selector.name}{${matcher.label}…}`).toContain(matcher.label);
          const values = LABEL_VALUES[matcher.label];
          // Regex matchers name alternatives; each must be a value the apps write.
          if (values && matcher.op !== '!~') {
            for (const value of matcher.op.endsWith('~') ? matcher.value.split('|') : [matcher.value]) {
              expect(values, `${where}: ${matcher.label}="${value}"`).toContain(value);
            }
          }
        }
      }
      for (const label of grouping) expect([...carried, 'le'], `${where}: by (${label})`).toContain(label);
    }
  });

  it("the alerts' annotations name labels their expression keeps", () => {
    const rules = (parseYaml(read('k8s/base/prometheusrule.yaml')) as Any).spec.groups.flatMap((group: Any) => group.rules);
    for (const rule of rules) {
      const { selectors, grouping } = parse(String(rule.expr));
      const aggregated = /\b(sum|max|min|avg|count)\b/.test(rule.expr);
      // An aggregation keeps its `by` labels only; a plain selector keeps the series' own.
      const kept = aggregated ? grouping : [...TARGET_LABELS, ...selectors.flatMap((selector) => series.get(selector.name) ?? [])];
      for (const [, label] of JSON.stringify(rule.annotations).matchAll(/\$labels\.([a-z_]+)/g)) {
        expect(kept, `${rule.alert}: $labels.${label}`).toContain(label);
      }
    }
  });
});
