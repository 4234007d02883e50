/**
 * The chat page (apps/web) in a real browser: Debian's Chromium driven by playwright-core,
 * against real gateway processes and a worker on a fresh database.
 *
 * Each user's page is opened through a "load balancer" of its own (a TCP proxy, harness.ts,
 * as a Service would be in Kubernetes): Alice's prefers pod A, Bob's pod B, and both fall
 * back to the other pod when theirs refuses connections. So the page only ever talks to its
 * own origin, and when pod B is SIGKILLed Bob's page reconnects — to pod A — and catches up.
 *
 * Run: `pnpm test:browser` (needs `apt-get install -y chromium`, Postgres and Redis).
 * Screenshots of the key moments go to test/artifacts/.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { io, type Socket } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { CHAT_NAMESPACE, ERRORS } from '@chat/protocol';
import { spawnGateway, spawnWorker, uniquePrefix, WORKSPACE_ROOT, type GatewayProcess, type TestProcess } from '@chat/testing';
import {
  browserSkipReason,
  createRoom,
  devLogin,
  launchChromium,
  message,
  messageIds,
  pageSet,
  send,
  sessionToken,
  signIn,
  startBalancer,
  type Balancer,
} from './harness.ts';

const ARTIFACTS = path.join(WORKSPACE_ROOT, 'test', 'artifacts');

describe.skipIf(browserSkipReason !== null)('chat page in Chromium', () => {
  let podA: GatewayProcess;
  let podB: GatewayProcess;
  let worker: TestProcess;
  let balancerA: Balancer;
  let balancerB: Balancer;
  let browser: Browser;
  let alice: Page;
  let bob: Page;
  const pages = pageSet(() => browser);
  const pageErrors = pages.errors;
  const openPage = pages.open;
  let shot = 0;

  const port = (pod: GatewayProcess) => Number(new URL(pod.url).port);
  const screenshot = async (page: Page, name: string) => {
    shot += 1;
    await page.screenshot({ path: path.join(ARTIFACTS, `${String(shot).padStart(2, '0')}-${name}.png`) });
  };

  beforeAll(async () => {
    rmSync(ARTIFACTS, { recursive: true, force: true });
    mkdirSync(ARTIFACTS, { recursive: true });
    // Screenshots are artefacts, never sources: the folder ignores itself.
    writeFileSync(path.join(ARTIFACTS, '.gitignore'), '*\n');
    // What the gateway serves at `/` is the build: make it from the current sources.
    execFileSync('pnpm', ['--filter', '@chat/web', 'build'], { cwd: WORKSPACE_ROOT, stdio: 'pipe' });

    const cluster = { databaseUrl: inject('databaseUrl'), redisUrl: inject('redisUrl'), redisPrefix: uniquePrefix('browser'), busClusterNodes: inject('busClusterNodes') || null };
    const preferA: number[] = [];
    const preferB: number[] = [];
    balancerA = await startBalancer(preferA);
    balancerB = await startBalancer(preferB);
    const env = {
      CORS_ORIGINS: [balancerA.url, balancerB.url].join(','),
      // The scroll-back test seeds more history than the per-user rate limit allows.
      MESSAGE_RATE_LIMIT_PER_MINUTE: '1000',
    };
    [podA, podB] = await Promise.all([
      spawnGateway(cluster, { ...env, POD_NAME: 'browser-pod-a' }),
      spawnGateway(cluster, { ...env, POD_NAME: 'browser-pod-b' }),
    ]);
    preferA.push(port(podA), port(podB));
    preferB.push(port(podB), port(podA));
    worker = spawnWorker(cluster, { METRICS_PORT: '0', METRICS_HOST: '127.0.0.1', LOG_LEVEL: 'warn' });

    browser = await launchChromium();
    alice = await openPage(`${balancerA.url}/`, 'alice');
    bob = await openPage(`${balancerB.url}/`, 'bob');
  });

  afterAll(async () => {
    await pages.closeAll();
    await browser?.close().catch(() => undefined);
    await Promise.allSettled([podA?.kill('SIGKILL'), podB?.kill('SIGKILL'), worker?.kill('SIGTERM', 5000)]);
    await Promise.allSettled([balancerA?.close(), balancerB?.close()]);
  });

  it('serves the page, and answers JSON where the API is', async () => {
    const page = await fetch(`${podA.url}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
    const missing = await fetch(`${podA.url}/api/nothing-here`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ code: 'NOT_FOUND' });
    expect((await fetch(`${podA.url}/readyz`)).status).toBe(200);
  });

  it('lets two users on two pods chat, type, send emoji and images, see errors and delete', async () => {
    await signIn(alice, '김철수');
    await signIn(bob, '이영희');
    // Each user is on a pod of their own.
    expect(balancerA.lastPod).toBe(port(podA));
    expect(balancerB.lastPod).toBe(port(podB));

    await alice.fill('#room-name', '브라우저 테스트 방');
    await alice.click('#create-room button[type=submit]');
    await alice.locator('#room-view').waitFor();
    await expect.poll(() => alice.textContent('#room-title')).toBe('브라우저 테스트 방');

    await bob.click('#refresh-rooms');
    await bob.locator('#room-list .room-item', { hasText: '브라우저 테스트 방' }).click();
    await bob.locator('#room-view').waitFor();
    // Alice sees Bob come in (user-joined), both see two members, time left is shown.
    await alice.locator('#message-list li.notice', { hasText: '이** 님이 들어왔습니다' }).waitFor();
    await expect.poll(() => alice.textContent('#member-count')).toBe('2명');
    await expect.poll(() => bob.locator('#member-list li.online').count()).toBe(2);
    expect(await bob.textContent('#room-time-left')).toMatch(/^23시간 5\d분$/);
    await screenshot(alice, 'alice-bob-joined');

    // Typing, both ways.
    await alice.locator('#message-input').pressSequentially('안녕하세요', { delay: 30 });
    await expect.poll(() => bob.textContent('#typing')).toBe('김** 님이 입력 중…');
    await screenshot(bob, 'bob-sees-alice-typing');
    await alice.click('#send');
    await message(bob, '안녕하세요').waitFor();
    await expect.poll(() => bob.textContent('#typing')).toBe('');

    const markup = '<img src=x onerror="document.title=\'xss\'">';
    await bob.locator('#message-input').pressSequentially('반가워요', { delay: 30 });
    await expect.poll(() => alice.textContent('#typing')).toBe('이** 님이 입력 중…');
    await bob.fill('#message-input', markup);
    await bob.click('#send');
    // Content is text: the markup shows as its characters and creates no element.
    const shown = message(alice, markup);
    await shown.waitFor();
    expect(await shown.locator('.body').textContent()).toBe(markup);
    expect(await shown.locator('img').count()).toBe(0);
    expect(await alice.title()).not.toBe('xss');

    // Emoji and an image URL (served by the gateway itself: only 127.0.0.1 is ever contacted).
    await alice.locator('#emoji-bar button', { hasText: '🎉' }).click();
    await bob.locator('#message-list li.message.emoji', { hasText: '🎉' }).waitFor();
    await alice.selectOption('#message-type', 'image');
    await alice.fill('#message-input', `${balancerA.url}/favicon.svg`);
    await alice.click('#send');
    const picture = bob.locator('#message-list li.message.image img');
    await picture.waitFor();
    await expect
      .poll(() => picture.evaluate((img) => (img as unknown as { naturalWidth: number }).naturalWidth))
      .toBeGreaterThan(0);
    await alice.selectOption('#message-type', 'text');

    // A protocol error appears as its Korean message.
    await bob.selectOption('#message-type', 'image');
    await bob.fill('#message-input', 'not a url');
    await bob.click('#send');
    await expect.poll(() => bob.textContent('#toast')).toBe(ERRORS.INVALID_IMAGE_URL.message);
    await screenshot(bob, 'bob-error-and-messages');
    await bob.selectOption('#message-type', 'text');
    await bob.fill('#message-input', '');

    // Alice deletes her message; it disappears for Bob too (message-deleted).
    await send(alice, '이 메시지는 곧 지웁니다');
    await message(bob, '이 메시지는 곧 지웁니다').waitFor();
    // Only one's own messages have a delete button.
    expect(await message(alice, markup).locator('button.delete').count()).toBe(0);
    await message(alice, '이 메시지는 곧 지웁니다').locator('button.delete').click();
    await message(bob, '이 메시지는 곧 지웁니다').waitFor({ state: 'detached' });
    await message(alice, '이 메시지는 곧 지웁니다').waitFor({ state: 'detached' });
    await screenshot(bob, 'bob-after-alice-deleted');
    expect(await messageIds(bob)).toEqual(await messageIds(alice));
  });

  it('scrolls back through history with `before`', async () => {
    // Carol, a script, fills a room with 70 messages; Alice opens it and scrolls back.
    const login = await devLogin(podA.url, '박민수');
    const room = await createRoom(podA.url, login.accessToken, '긴 대화');
    const carol: Socket = io(`${podA.url}${CHAT_NAMESPACE}`, { auth: { token: login.accessToken }, transports: ['websocket'] });
    try {
      await carol.timeout(10_000).emitWithAck('join-room', { roomId: room.roomId });
      for (let i = 1; i <= 70; i++) {
        await carol.timeout(10_000).emitWithAck('send-message', { roomId: room.roomId, type: 'text', content: `기록 ${i}` });
      }
    } finally {
      carol.disconnect();
    }

    await alice.click('#refresh-rooms');
    await alice.locator('#room-list .room-item', { hasText: '긴 대화' }).click();
    await message(alice, '기록 70').waitFor();
    expect(await alice.locator('#message-list li.message').count()).toBe(50);
    // Scrolling to the top loads the previous page (the button does the same).
    await alice.locator('#messages').evaluate((box) => {
      (box as unknown as { scrollTop: number }).scrollTop = 0;
    });
    await message(alice, '기록 1').waitFor();
    expect(await alice.locator('#message-list li.message').count()).toBe(70);
    expect(await alice.locator('#load-older').isHidden()).toBe(true);
    const ids = await messageIds(alice);
    expect(new Set(ids).size).toBe(70);
    expect(await alice.locator('#message-list li.message .body').first().textContent()).toBe('기록 1');
    await screenshot(alice, 'alice-scrolled-back');

    // Back to the shared room.
    await alice.locator('#room-list .room-item', { hasText: '브라우저 테스트 방' }).click();
    await message(alice, '안녕하세요').waitFor();
  });

  it('reconnects to the other pod when its pod is killed, and misses nothing', async () => {
    const before = await messageIds(bob);
    // Bob is typing when his pod goes: after the reconnect his next keystroke must announce it
    // again on the new connection (the idle timer of the old one has not run out yet).
    await bob.locator('#message-input').pressSequentially('가', { delay: 0 });
    // Pod B dies without a word; Bob's balancer takes a moment to notice (refuses meanwhile).
    balancerB.refusing = true;
    await podB.kill('SIGKILL');
    await bob.locator('#status[data-state=connecting]').waitFor();
    await screenshot(bob, 'bob-pod-killed');

    // Meanwhile Alice (pod A) goes on talking: these broadcasts never reach Bob.
    const missed = ['놓친 메시지 하나', '놓친 메시지 둘', '놓친 메시지 셋'];
    for (const text of missed) await send(alice, text);
    await alice.locator('#emoji-bar button', { hasText: '👍' }).click();
    await alice.locator('#message-list li.message.emoji', { hasText: '👍' }).waitFor();
    await bob.waitForTimeout(500);
    expect(await message(bob, missed[0]!).count()).toBe(0);

    // The balancer now sends Bob to pod A: the page reconnects and catches up with `after`.
    balancerB.refusing = false;
    await bob.locator('#status[data-state=online]').waitFor({ timeout: 20_000 });
    expect(balancerB.lastPod).toBe(port(podA));
    for (const text of missed) await message(bob, text).waitFor();
    await bob.locator('#message-list li.message.emoji', { hasText: '👍' }).waitFor();
    const after = await messageIds(bob);
    expect(new Set(after).size).toBe(after.length);
    expect(after.slice(0, before.length)).toEqual(before);
    expect(after).toEqual(await messageIds(alice));
    for (const text of missed) expect(await message(bob, text).count()).toBe(1);

    // And the conversation goes on, now through pod A for both.
    await bob.fill('#message-input', '');
    await bob.locator('#message-input').pressSequentially('돌아왔어요', { delay: 30 });
    await expect.poll(() => alice.textContent('#typing')).toBe('이** 님이 입력 중…');
    await bob.click('#send');
    await message(alice, '돌아왔어요').waitFor();
    // Live messages are put on screen once per frame: Bob's may come a frame after Alice's.
    await expect.poll(() => messageIds(bob)).toEqual(await messageIds(alice));
    await screenshot(bob, 'bob-caught-up-on-pod-a');
    await screenshot(alice, 'alice-final');
  });

  it('removes a message deleted while the page was offline, once it reconnects', async () => {
    const text = '곧 지워질 메시지';
    await send(alice, text);
    await message(bob, text).waitFor();

    // Bob's network goes: his socket and any HTTP connection are cut, new ones refused.
    balancerB.cut();
    await bob.locator('#status[data-state=connecting]').waitFor();
    // Alice deletes it meanwhile: Bob never gets that `message-deleted` broadcast.
    await message(alice, text).locator('button.delete').click();
    await expect.poll(() => message(alice, text).count()).toBe(0);
    await bob.waitForTimeout(500);
    expect(await message(bob, text).count()).toBe(1);
    await screenshot(bob, 'bob-offline-still-shows-deleted');

    // Back online: one catch-up through the change feed takes the deleted message off.
    balancerB.refusing = false;
    await bob.locator('#status[data-state=online]').waitFor({ timeout: 20_000 });
    await expect.poll(() => message(bob, text).count(), { timeout: 10_000 }).toBe(0);
    expect(await messageIds(bob)).toEqual(await messageIds(alice));
    await screenshot(bob, 'bob-caught-up-delete');
  });

  it('shows the room left when the user leaves it on another device, and joins it again when picked', async () => {
    // Bob's other device (a script with his token) leaves the room his page has open.
    const roomId = await bob.locator('#room-list li.active .room-item').getAttribute('data-room-id');
    expect(roomId).toBeTruthy();
    const token = await sessionToken(bob);
    const device: Socket = io(`${podA.url}${CHAT_NAMESPACE}`, { auth: { token }, transports: ['websocket'] });
    try {
      expect(await device.timeout(10_000).emitWithAck('leave-room', { roomId })).toMatchObject({ ok: true });
    } finally {
      device.disconnect();
    }
    // room-left: the page says so and will not send.
    await bob.locator('#room-banner[data-kind=left]').waitFor();
    await expect.poll(() => bob.textContent('#member-count')).toBe('1명');
    expect(await bob.locator('#send').isDisabled()).toBe(true);
    expect(await bob.locator('#message-input').isDisabled()).toBe(true);
    await alice.locator('#message-list li.notice', { hasText: '이** 님이 나갔습니다' }).last().waitFor();
    await send(alice, '나간 사이에 온 메시지');
    await bob.waitForTimeout(500);
    expect(await message(bob, '나간 사이에 온 메시지').count()).toBe(0);
    await screenshot(bob, 'bob-left-on-another-device');

    // Picking the room in the list joins it again.
    await bob.locator('#room-list .room-item', { hasText: '브라우저 테스트 방' }).click();
    await message(bob, '나간 사이에 온 메시지').waitFor();
    await expect.poll(() => bob.locator('#send').isDisabled()).toBe(false);
    expect(await bob.locator('#room-banner').isHidden()).toBe(true);
    await send(bob, '다시 들어왔어요');
    await message(alice, '다시 들어왔어요').waitFor();
  });

  it('shows a room expiring and then expired, live', async () => {
    const { accessToken } = await devLogin(podA.url, '최지우');
    await createRoom(podA.url, accessToken, '곧 사라질 방', 5);
    await alice.click('#refresh-rooms');
    await alice.locator('#room-list .room-item', { hasText: '곧 사라질 방' }).click();
    await expect.poll(() => alice.textContent('#room-title')).toBe('곧 사라질 방');
    await alice.locator('#room-banner[data-kind=expiring]').waitFor();
    expect(await alice.textContent('#room-banner')).toMatch(/^이 방은 \d+초 후 만료됩니다$/);
    await screenshot(alice, 'alice-room-expiring');
    // room-expired (from the worker) closes the composer and takes the room off the list.
    await alice.locator('#room-banner[data-kind=expired]').waitFor({ timeout: 20_000 });
    await expect.poll(() => alice.locator('#send').isDisabled(), { timeout: 20_000 }).toBe(true);
    await expect.poll(() => alice.locator('#room-list .room-item', { hasText: '곧 사라질 방' }).count()).toBe(0);
    expect(await alice.textContent('#room-banner')).toBe(ERRORS.ROOM_EXPIRED.message);
    await screenshot(alice, 'alice-room-expired');
  });

  it('connects once a handshake refused for too many sockets is allowed again', async () => {
    // Pod B is gone since the previous test: both balancers lead to pod A.
    const erin = await openPage(`${balancerA.url}/`, 'erin');
    await signIn(erin, '정하늘');
    const token = await sessionToken(erin);
    // The page leaves (its socket closes), and Erin's 32 other sockets take every place on pod A.
    await erin.goto('about:blank');
    const others: Socket[] = [];
    const open = () =>
      new Promise<Socket | null>((resolve) => {
        const other: Socket = io(`${podA.url}${CHAT_NAMESPACE}`, { auth: { token }, transports: ['websocket'], reconnection: false });
        other.once('connect', () => resolve(other));
        other.once('connect_error', () => {
          other.close();
          resolve(null);
        });
      });
    try {
      const deadline = Date.now() + 10_000;
      while (others.length < 32 && Date.now() < deadline) {
        const other = await open();
        if (other) others.push(other);
        else await erin.waitForTimeout(100); // the page's own socket is still closing
      }
      expect(others).toHaveLength(32);
      // Back to the page, same tab and session: its handshake is one too many.
      await erin.goto(`${balancerA.url}/`);
      await erin.waitForTimeout(1500);
      expect(await erin.getAttribute('#status', 'data-state')).toBe('connecting');
      // One closes: the page's retry (Socket.IO does not retry a refusal by itself) gets in.
      others.pop()!.close();
      await erin.locator('#status[data-state=online]').waitFor({ timeout: 15_000 });
    } finally {
      for (const other of others) other.close();
    }
  });

  it('waits out the retryAfterMs of a handshake refused for too many handshakes before trying again', async () => {
    // Pod B is gone: both balancers lead to pod A, whose refusals /metrics counts.
    const refusals = async () => {
      const text = await (await fetch(`${podA.url}/metrics`)).text();
      const line = text.split('\n').find((row) => row.startsWith('chat_handshake_failures_total{code="TOO_MANY_REQUESTS"}'));
      return line ? Number(line.split(' ').pop()) : 0;
    };
    const fay = await openPage(`${balancerA.url}/`, 'fay');
    await signIn(fay, '한가을');
    const token = await sessionToken(fay);
    await fay.goto('about:blank');
    // Fay's handshakes for this minute, spent by sockets that connect and leave at once
    // (HANDSHAKE_RATE_LIMIT_PER_MINUTE, 120 by default), until one is refused for it.
    const handshake = () =>
      new Promise<{ retryAfterMs?: number } | null>((resolve) => {
        const other: Socket = io(`${podA.url}${CHAT_NAMESPACE}`, { auth: { token }, transports: ['websocket'], reconnection: false });
        other.once('connect', () => {
          other.close();
          resolve(null);
        });
        other.once('connect_error', (error) => {
          other.close();
          resolve((error as Error & { data?: { retryAfterMs?: number } }).data ?? {});
        });
      });
    let refusal: { retryAfterMs?: number } | null = null;
    for (let attempt = 0; attempt < 200 && refusal === null; attempt++) refusal = await handshake();
    // Long enough that a page ignoring it (a retry every 2-5 s) would try several times below.
    expect(refusal?.retryAfterMs).toBeGreaterThan(20_000);
    const before = await refusals();
    await fay.goto(`${balancerA.url}/`);
    await expect.poll(refusals, { timeout: 10_000 }).toBe(before + 1);
    await fay.waitForTimeout(12_000);
    expect(await refusals()).toBe(before + 1);
    expect(await fay.getAttribute('#status', 'data-state')).toBe('connecting');
    // Once the minute's budget is back, the page's one retry gets in.
    await fay.locator('#status[data-state=online]').waitFor({ timeout: 75_000 });
    expect(await refusals()).toBe(before + 1);
  }, 150_000);

  it('had no uncaught errors in the pages', () => {
    expect(pageErrors).toEqual([]);
  });
});
