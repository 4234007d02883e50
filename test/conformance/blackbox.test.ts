import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { TEST_JWT_SECRET } from '@chat/testing';
import { clusterTest } from '../support/index.ts';

/**
 * The black-box client (blackbox.ts, written from docs/PROTOCOL.md alone) against four in-process
 * pods and a worker, in `pnpm test` and, under TEST_BUS=cluster, on a Redis Cluster bus. It
 * prints one line per check and exits non-zero on any failure; the failures are shown here.
 */
// The cluster's own defaults (budgets, limits, the occupancy grace and expiry notice), as
// `pnpm start` runs them: the client checks them. Four pods: the client spreads the members of a
// room over them, so that each room event it checks is heard on every pod.
const it = clusterTest({ ownDatabase: true, pods: 4 });

const BLACKBOX = fileURLToPath(new URL('./blackbox.ts', import.meta.url));

it('a client written from the protocol alone passes every check across four pods', { timeout: 200_000 }, async ({ cluster, startWorker }) => {
  await startWorker({ SWEEP_INTERVAL_MS: '250' });
  const [a, b, c, d] = cluster.pods;
  const child = spawn(process.execPath, ['--import', 'tsx', BLACKBOX], {
    env: {
      ...process.env,
      JWT_SECRET: TEST_JWT_SECRET,
      BASE_A: a!.url,
      BASE_B: b!.url,
      BASE_C: c!.url,
      BASE_D: d!.url,
      // The in-process pods list this one (test/support/cluster.ts), not their own origins.
      ALLOWED_ORIGIN: 'http://allowed.example',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  const failures = output.split('\n').filter((line) => line.startsWith('[FAIL]') || line.startsWith('  ') && line.includes('expected'));
  expect({ code, failures, summary: output.trim().split('\n').at(-1) }).toMatchObject({ code: 0, failures: [] });
  expect(output).toMatch(/\b\d{3} passed, 0 failed\b/);
});
