/**
 * The compose stack's Prometheus configuration and Grafana dashboard, in their real programs'
 * terms: `promtool check config` (Debian's prometheus package, see test/alerts/promtool.ts), and
 * the dashboard JSON against Grafana's dashboard schema as Grafana publishes it in
 * @grafana/schema (the TypeScript types generated from its CUE schema; no Grafana is packaged
 * for Debian, so no Grafana server loads it here). The dashboard is checked as an object
 * literal with `satisfies Dashboard`, so a wrong type or an unknown field is an error.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { findPromtool } from '../alerts/promtool.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));

describe('observability configuration', () => {
  it('infra/prometheus.yml passes promtool check config', () => {
    const promtool = findPromtool();
    const run = spawnSync(promtool, ['check', 'config', path.join(root, 'infra/prometheus.yml')], { encoding: 'utf8', timeout: 60_000 });
    expect(`${run.stdout}${run.stderr}`).toMatch(/SUCCESS/);
    expect(run.status).toBe(0);
  }, 180_000);

  it("infra/grafana/dashboard.json satisfies Grafana's Dashboard schema (@grafana/schema)", () => {
    const dashboard: unknown = JSON.parse(readFileSync(path.join(root, 'infra/grafana/dashboard.json'), 'utf8'));
    // Inside the workspace, so that @grafana/schema resolves from its node_modules.
    const cache = path.join(root, 'node_modules/.cache');
    mkdirSync(cache, { recursive: true });
    const dir = mkdtempSync(path.join(cache, 'dashboard-schema-'));
    try {
      writeFileSync(
        path.join(dir, 'dashboard.ts'),
        `import type { Dashboard } from '@grafana/schema';\nexport const dashboard = ${JSON.stringify(dashboard, null, 2)} satisfies Dashboard;\n`,
      );
      writeFileSync(
        path.join(dir, 'tsconfig.json'),
        JSON.stringify({
          compilerOptions: { strict: true, noEmit: true, module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', skipLibCheck: true, types: [] },
          files: ['dashboard.ts'],
        }),
      );
      const tsc = spawnSync(process.execPath, [path.join(root, 'node_modules/typescript/bin/tsc'), '-p', dir], { encoding: 'utf8', timeout: 120_000 });
      expect(`${tsc.stdout}${tsc.stderr}`.trim()).toBe('');
      expect(tsc.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 180_000);
});
