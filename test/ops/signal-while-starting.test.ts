import { execFileSync } from 'node:child_process';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { freePort, killAllProcesses, sleep, spawnProcess, testWorkerEnv, uniquePrefix, TEST_JWT_SECRET } from '@chat/testing';

/**
 * A pod stopped while it is still starting (here: its Redis refuses connections, which holds the
 * start up to 5 s). In a container Node runs as PID 1, which ignores any signal it has no
 * handler for, and the apps installed theirs only once started: the SIGTERM was lost and the
 * pod ran on until its grace period's SIGKILL. `unshare --pid` makes the app PID 1 of a PID
 * namespace of its own, as a container does (needs root; CI runs as root).
 */

afterAll(async () => {
  await killAllProcesses();
});

const canUnshare = (() => {
  try {
    execFileSync('unshare', ['--pid', '--fork', '--kill-child', 'true'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

/** The app's PID as seen from here: the only child of `unshare --fork`. */
function childOf(pid: number): number | null {
  try {
    const children = execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' }).trim().split('\n').filter(Boolean);
    return children.length === 1 ? Number(children[0]) : null;
  } catch {
    return null;
  }
}

async function stopWhileStarting(entry: string, env: Record<string, string>, app: string) {
  const proc = spawnProcess('unshare', ['--pid', '--fork', '--kill-child', process.execPath, '--import', 'tsx', entry], env);
  // Its Redis client's first refused connection: the app is in its start, past `main`'s first lines.
  const deadline = Date.now() + 45_000;
  while (!proc.output().includes('ECONNREFUSED') && proc.child.exitCode === null && Date.now() < deadline) await sleep(50);
  expect(proc.output(), 'the app never tried its Redis').toContain('ECONNREFUSED');
  const pid = childOf(proc.child.pid!);
  expect(pid, 'the app under unshare').not.toBeNull();
  const signalledAt = Date.now();
  process.kill(pid!, 'SIGTERM');
  const exited = await Promise.race([proc.exited.then(() => true), sleep(3000).then(() => false)]);
  const tookMs = Date.now() - signalledAt;
  await proc.kill('SIGKILL');
  expect(exited, `still running 3 s after SIGTERM:\n${proc.output().slice(-1500)}`).toBe(true);
  expect(tookMs).toBeLessThan(3000);
  expect(proc.output()).toContain(`${app}: SIGTERM while starting; exiting`);
}

describe.skipIf(!canUnshare)('SIGTERM while starting, as PID 1 of a container', () => {
  it('the gateway exits at once', { timeout: 60_000 }, async () => {
    const deadRedis = `redis://127.0.0.1:${await freePort()}`;
    await stopWhileStarting(
      'apps/gateway/src/main.ts',
      {
        PORT: String(await freePort()),
        HOST: '127.0.0.1',
        DATABASE_URL: inject('databaseUrl'),
        REDIS_URL: deadRedis,
        REDIS_BUS_CLUSTER_NODES: '',
        REDIS_PREFIX: uniquePrefix('start'),
        JWT_SECRET: TEST_JWT_SECRET,
        LOG_LEVEL: 'warn',
      },
      'gateway',
    );
  });

  it('the worker exits at once', { timeout: 60_000 }, async () => {
    const deadRedis = `redis://127.0.0.1:${await freePort()}`;
    const cluster = { databaseUrl: inject('databaseUrl'), redisUrl: deadRedis, redisPrefix: uniquePrefix('start'), busClusterNodes: null };
    await stopWhileStarting('apps/worker/src/main.ts', { ...testWorkerEnv(cluster), METRICS_PORT: String(await freePort()), LOG_LEVEL: 'warn' }, 'worker');
  });
});
