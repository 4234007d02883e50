import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { io, type Socket } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dropDatabase } from '@chat/db';
import {
  TEST_JWT_SECRET,
  WORKSPACE_ROOT,
  freePort,
  killAllProcesses,
  makeUser,
  request,
  spawnProcess,
  uniquePrefix,
  type TestProcess,
} from '@chat/testing';

/**
 * What the images run (infra/Dockerfile: `node dist/<app>.mjs`, no node_modules), without a
 * Docker engine: `infra/build.ts` bundles into a folder of its own under the system's temporary
 * directory, where no node_modules can be found by walking up, and the bundles then migrate a
 * new database, serve, persist a message, sweep, and shut down on SIGTERM.
 */

const out = mkdtempSync(path.join(tmpdir(), 'chat-bundle-'));
const dist = path.join(out, 'dist');
let databaseUrl: string;
let redisPrefix: string;

/** `node dist/<app>.mjs` from `out`, with this environment only on top of the test's. */
function runBundle(app: 'gateway' | 'worker' | 'migrate', env: Record<string, string>): TestProcess {
  return spawnProcess(process.execPath, ['--enable-source-maps', path.join(dist, `${app}.mjs`)], env);
}

async function waitFor(check: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return true;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return false;
}

beforeAll(async () => {
  const base = new URL(process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres');
  base.pathname = `/chat_bundle_${randomBytes(3).toString('hex')}`;
  databaseUrl = base.toString();
  redisPrefix = uniquePrefix('bundle');
  const build = spawnProcess(process.execPath, ['--import', 'tsx', path.join(WORKSPACE_ROOT, 'infra/build.ts')], {
    BUILD_OUT_DIR: dist,
    BUILD_WITHOUT_WEB: '1',
  });
  expect(await build.exited, build.output()).toBe(0);
}, 120_000);

afterAll(async () => {
  await killAllProcesses();
  await dropDatabase(databaseUrl).catch(() => undefined);
  rmSync(out, { recursive: true, force: true });
});

describe('the production bundles (dist/*.mjs)', () => {
  it('migrate, serve and persist across a gateway and the worker, from a folder without node_modules, and drain on SIGTERM', { timeout: 90_000 }, async () => {
    const migrate = runBundle('migrate', { DATABASE_URL: databaseUrl });
    expect(await migrate.exited, migrate.output()).toBe(0);

    const port = await freePort();
    const env = {
      DATABASE_URL: databaseUrl,
      REDIS_URL: process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379',
      REDIS_PREFIX: redisPrefix,
      JWT_SECRET: TEST_JWT_SECRET,
      LOG_LEVEL: 'info',
    };
    const gateway = runBundle('gateway', { ...env, PORT: String(port), HOST: '127.0.0.1', POD_NAME: 'bundle-gateway', DRAIN_WINDOW_MS: '500' });
    const worker = runBundle('worker', { ...env, POD_NAME: 'bundle-worker', METRICS_PORT: '0', SWEEP_INTERVAL_MS: '200' });
    const url = `http://127.0.0.1:${port}`;
    expect(await waitFor(async () => (await fetch(`${url}/readyz`)).ok, 30_000), gateway.output()).toBe(true);

    // The REST API, the API docs (swagger-ui's static files come from dist/vendor) and the
    // chat page's answer when the bundle was built without it.
    const alice = await makeUser('김철수');
    expect((await fetch(`${url}/docs/static/swagger-ui.css`)).status).toBe(200);
    expect((await fetch(`${url}/`)).status).toBe(503);

    // The room's life starts at its creation and the worker sweeps every 200 ms, so everything
    // slow (the socket's handshake, the first requests into a cold bundle) happens before it, and
    // the life covers a create, a join, a send and a history read on a loaded 2-core machine. A
    // 2-second room created before those could expire first: the send answered { ok: false }.
    const socket: Socket = io(`${url}/socket`, { auth: { token: alice.token }, transports: ['websocket'], reconnection: false });
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('connect', () => resolve());
        socket.once('connect_error', reject);
      });
      // Listening from before the room exists: its expiry is not missed however slow the rest is.
      const expired = new Promise((resolve) => socket.once('room-expired', resolve));
      const room = await request<{ roomId: string }>(url, 'POST', '/api/rooms', { token: alice.token, body: { name: '번들 방', ttlSeconds: 8 } });
      expect(room.status).toBe(201);
      expect(await socket.timeout(5000).emitWithAck('join-room', { roomId: room.body.roomId })).toMatchObject({ ok: true });
      const sent = await socket.timeout(5000).emitWithAck('send-message', { roomId: room.body.roomId, type: 'text', content: '번들에서' });
      expect(sent).toMatchObject({ ok: true, data: { seq: 1, content: '번들에서' } });
      const history = await request<{ messages: { content: string }[] }>(url, 'GET', `/api/rooms/${room.body.roomId}/messages`);
      expect(history.body.messages.map((m) => m.content)).toEqual(['번들에서']);

      // The worker's bundle sweeps the 8-second room; the gateway announces it.
      await expect(Promise.race([expired, new Promise((_, reject) => setTimeout(() => reject(new Error('no room-expired within 30 s')), 30_000))])).resolves.toMatchObject({
        roomId: room.body.roomId,
      });
    } finally {
      socket.close();
    }

    await gateway.kill('SIGTERM', 15_000);
    expect(gateway.child.exitCode, gateway.output().slice(-2000)).toBe(0);
    expect(gateway.output()).toContain('"msg":"stopped"');
    await worker.kill('SIGTERM', 15_000);
    expect(worker.child.exitCode, worker.output().slice(-2000)).toBe(0);
    expect(worker.output()).toContain('"msg":"worker stopped"');
  });
});
