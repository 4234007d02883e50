/**
 * The chat page in Chromium when things happen around it: its pod drains, the user joins a
 * room again on another device, another room is picked while a page of history is on its way,
 * a reload finds the server unavailable for a moment.
 * Bob's page goes through a balancer that prefers pod B and falls back to pod A (harness.ts);
 * the other users are scripts on pod A.
 *
 * Run: `pnpm test:browser` (needs `apt-get install -y chromium`, Postgres and Redis).
 */
import { execFileSync } from 'node:child_process';
import type { Browser, Page } from 'playwright-core';
import { io, type Socket } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { CHAT_NAMESPACE, ERRORS } from '@chat/protocol';
import { spawnGateway, uniquePrefix, WORKSPACE_ROOT, type GatewayProcess } from '@chat/testing';
import {
  browserSkipReason,
  createRoom,
  devLogin,
  holdRequests,
  launchChromium,
  message,
  messageIds,
  pageSet,
  sessionToken,
  signIn,
  startBalancer,
  type Balancer,
} from './harness.ts';

/** A user driven by a script: a socket on `base` with `token`. */
async function scriptSocket(base: string, token: string): Promise<Socket> {
  const socket: Socket = io(`${base}${CHAT_NAMESPACE}`, { auth: { token }, transports: ['websocket'] });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('connect_error', reject);
  });
  return socket;
}

async function emit(socket: Socket, event: string, payload: unknown): Promise<unknown> {
  const answer = (await socket.timeout(10_000).emitWithAck(event, payload)) as { ok: boolean };
  expect(answer).toMatchObject({ ok: true });
  return answer;
}

describe.skipIf(browserSkipReason !== null)('chat page in Chromium, recovering', () => {
  let podA: GatewayProcess;
  let podB: GatewayProcess;
  let balancer: Balancer;
  let browser: Browser;
  let bob: Page;
  let bobToken: string;
  let carol: Socket;
  let carolToken: string;
  const sockets: Socket[] = [];
  const pages = pageSet(() => browser);
  const port = (pod: GatewayProcess) => Number(new URL(pod.url).port);

  async function pickRoom(page: Page, name: string): Promise<void> {
    await page.click('#refresh-rooms');
    await page.locator('#room-list .room-item', { hasText: name }).click();
    await expect.poll(() => page.textContent('#room-title')).toBe(name);
  }

  /** A room made by Carol, who joins it and says `count` things in it. */
  async function carolsRoom(name: string, count: number): Promise<string> {
    const { roomId } = await createRoom(podA.url, carolToken, name);
    await emit(carol, 'join-room', { roomId });
    for (let i = 1; i <= count; i++) await emit(carol, 'send-message', { roomId, type: 'text', content: `${name} ${i}` });
    return roomId;
  }

  beforeAll(async () => {
    execFileSync('pnpm', ['--filter', '@chat/web', 'build'], { cwd: WORKSPACE_ROOT, stdio: 'pipe' });
    const cluster = { databaseUrl: inject('databaseUrl'), redisUrl: inject('redisUrl'), redisPrefix: uniquePrefix('browser-recovery'), busClusterNodes: inject('busClusterNodes') || null };
    const prefer: number[] = [];
    balancer = await startBalancer(prefer);
    const env = { CORS_ORIGINS: balancer.url, MESSAGE_RATE_LIMIT_PER_MINUTE: '1000' };
    [podA, podB] = await Promise.all([
      spawnGateway(cluster, { ...env, POD_NAME: 'recovery-pod-a' }),
      // A drain that takes a while, as in Kubernetes (spawnGateway's default is none).
      spawnGateway(cluster, { ...env, POD_NAME: 'recovery-pod-b', DRAIN_WINDOW_MS: '2000' }),
    ]);
    prefer.push(port(podB), port(podA));
    browser = await launchChromium();
    bob = await pages.open(`${balancer.url}/`, 'bob');
    await signIn(bob, '이영희');
    bobToken = await sessionToken(bob);
    carolToken = (await devLogin(podA.url, '박민수')).accessToken;
    carol = await scriptSocket(podA.url, carolToken);
    sockets.push(carol);
  });

  afterAll(async () => {
    for (const socket of sockets) socket.disconnect();
    await pages.closeAll();
    await browser?.close().catch(() => undefined);
    await Promise.allSettled([podA?.kill('SIGKILL'), podB?.kill('SIGKILL')]);
    await balancer?.close();
  });

  it('opens a room shown left again when the user joins it again on another device, with what came meanwhile', async () => {
    const roomId = await carolsRoom('다시 들어온 방', 1);
    await pickRoom(bob, '다시 들어온 방');
    await message(bob, '다시 들어온 방 1').waitFor();

    // Bob's other device leaves: the page shows the room left.
    const device = await scriptSocket(podA.url, bobToken);
    sockets.push(device);
    await emit(device, 'leave-room', { roomId });
    await bob.locator('#room-banner[data-kind=left]').waitFor();
    await emit(carol, 'send-message', { roomId, type: 'text', content: '나가 있는 동안' });

    // …and joins again: the page's socket is back in the room (room-joined), so is the page.
    await emit(device, 'join-room', { roomId });
    await expect.poll(() => bob.locator('#room-banner').isHidden()).toBe(true);
    await expect.poll(() => bob.locator('#send').isDisabled()).toBe(false);
    await message(bob, '나가 있는 동안').waitFor();
    await expect.poll(() => bob.textContent('#member-count')).toBe('2명');
    await expect.poll(() => bob.locator('#member-list li', { hasText: '(나)' }).count()).toBe(1);
    await emit(carol, 'send-message', { roomId, type: 'text', content: '다시 왔네요' });
    await message(bob, '다시 왔네요').waitFor();
    await bob.fill('#message-input', '네, 돌아왔어요');
    await bob.click('#send');
    await message(bob, '네, 돌아왔어요').waitFor();
    expect(new Set(await messageIds(bob)).size).toBe(4);
    device.disconnect();
  });

  it('leaves the scroll-back button to the room on screen when another is picked during a scroll-back', async () => {
    await carolsRoom('긴 방', 70);
    await carolsRoom('짧은 방', 1);
    await pickRoom(bob, '긴 방');
    await message(bob, '긴 방 70').waitFor();
    expect(await bob.locator('#load-older').isVisible()).toBe(true);

    // The page of older messages is slow to come; meanwhile Bob picks another room.
    const { requested, release } = await holdRequests(bob, /\/messages\?.*before=/, (route) => route.continue());
    await bob.click('#load-older');
    await requested;
    await pickRoom(bob, '짧은 방');
    await message(bob, '짧은 방 1').waitFor();
    expect(await bob.locator('#load-older').isHidden()).toBe(true);

    const answered = bob.waitForResponse(/\/messages\?.*before=/);
    release();
    await answered;
    await bob.unroute(/\/messages\?.*before=/);
    // The short room has nothing older: the long room's answer must not bring its button back.
    await bob.waitForTimeout(500);
    expect(await bob.locator('#load-older').isHidden()).toBe(true);
    expect(await bob.locator('#message-list li.message').count()).toBe(1);
  });

  it('reconnects when its pod drains (server-draining), and misses nothing said meanwhile', async () => {
    const roomId = await carolsRoom('배수 중인 방', 1);
    await pickRoom(bob, '배수 중인 방');
    await message(bob, '배수 중인 방 1').waitFor();
    expect(balancer.lastPod).toBe(port(podB));

    // SIGTERM: pod B says server-draining, closes its sockets within the window, then exits.
    const stopping = podB.kill('SIGTERM', 15_000);
    const said: string[] = [];
    for (let i = 1; i <= 5; i++) {
      said.push(`배수 중 ${i}`);
      await emit(carol, 'send-message', { roomId, type: 'text', content: `배수 중 ${i}` });
    }
    await stopping;
    await bob.locator('#status[data-state=online]').waitFor({ timeout: 20_000 });
    expect(balancer.lastPod).toBe(port(podA));
    for (const text of said) await message(bob, text).waitFor();
    await emit(carol, 'send-message', { roomId, type: 'text', content: '배수 끝' });
    await message(bob, '배수 끝').waitFor();
    const ids = await messageIds(bob);
    expect(ids).toHaveLength(7);
    expect(new Set(ids).size).toBe(7);
  });

  it('opens the room it had open after a reload, even when a reload before found the server unavailable', async () => {
    await expect.poll(() => bob.textContent('#room-title')).toBe('배수 중인 방');
    // A reload in the middle of a failover: the room's lookup answers 503.
    const lookup = /\/api\/rooms\/[0-9a-f-]{36}$/;
    await bob.route(lookup, (route) =>
      route.fulfill({
        status: 503,
        contentType: 'application/json',
        body: JSON.stringify({ statusCode: 503, error: 'Service Unavailable', message: ERRORS.UNAVAILABLE.message, code: 'UNAVAILABLE' }),
      }),
    );
    await bob.reload();
    await expect.poll(() => bob.textContent('#toast')).toBe(ERRORS.UNAVAILABLE.message);
    expect(await bob.locator('#room-view').isHidden()).toBe(true);
    await bob.unroute(lookup);
    // The server is back: the next reload opens the room again.
    await bob.reload();
    await expect.poll(() => bob.textContent('#room-title')).toBe('배수 중인 방');
    await message(bob, '배수 끝').waitFor();
  });

  it('had no uncaught errors in the pages', () => {
    expect(pages.errors).toEqual([]);
  });
});
