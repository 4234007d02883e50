/**
 * The chat page in Chromium for who is (not yet, or no longer) signed in, and for the failures
 * a user should be told about once or not at all: a guest reading rooms over REST, a room list
 * longer than a page, the server out of reach while the list refreshes, a token that expires, a
 * scroll-back that fails after another room was picked, a network blip during a join.
 * Each page goes through a balancer of its own (harness.ts), in front of one gateway pod; the
 * expiry test has a pod of its own whose dev login gives short-lived tokens.
 *
 * Run: `pnpm test:browser` (needs `apt-get install -y chromium`, Postgres and Redis).
 */
import { execFileSync } from 'node:child_process';
import type { Browser, Page } from 'playwright-core';
import { io, type Socket } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { CHAT_NAMESPACE, ERRORS } from '@chat/protocol';
import { spawnGateway, uniquePrefix, WORKSPACE_ROOT, type GatewayProcess } from '@chat/testing';
import { browserSkipReason, createRoom, devLogin, holdRequests, launchChromium, message, pageSet, send, signIn, startBalancer, type Balancer } from './harness.ts';

const UNREACHABLE = '서버에 연결할 수 없습니다';
const NO_ANSWER = '서버가 응답하지 않습니다. 잠시 후 다시 시도해주세요';

describe.skipIf(browserSkipReason !== null)('chat page in Chromium, guests and sessions', () => {
  let pod: GatewayProcess;
  let shortPod: GatewayProcess;
  let guestBalancer: Balancer;
  let userBalancer: Balancer;
  let shortBalancer: Balancer;
  let browser: Browser;
  let carol: Socket;
  let carolToken: string;
  const pages = pageSet(() => browser);
  const port = (gateway: GatewayProcess) => Number(new URL(gateway.url).port);

  async function emit(event: string, payload: unknown): Promise<void> {
    expect(await carol.timeout(10_000).emitWithAck(event, payload)).toMatchObject({ ok: true });
  }

  /** A room made by Carol (a script), who says `count` things in it. */
  async function carolsRoom(name: string, count: number): Promise<string> {
    const { roomId } = await createRoom(pod.url, carolToken, name);
    await emit('join-room', { roomId });
    for (let i = 1; i <= count; i++) await emit('send-message', { roomId, type: 'text', content: `${name} ${i}` });
    return roomId;
  }

  // Every browser test file shares one database: room names here are found in no other file.
  const roomItem = (page: Page, name: string) =>
    page.locator('#room-list .room-item').filter({ has: page.locator('.room-name', { hasText: new RegExp(`^${name}$`) }) });

  async function pickRoom(page: Page, name: string): Promise<void> {
    await page.click('#refresh-rooms');
    await roomItem(page, name).click();
    await expect.poll(() => page.textContent('#room-title')).toBe(name);
  }

  beforeAll(async () => {
    execFileSync('pnpm', ['--filter', '@chat/web', 'build'], { cwd: WORKSPACE_ROOT, stdio: 'pipe' });
    const cluster = { databaseUrl: inject('databaseUrl'), redisUrl: inject('redisUrl'), redisPrefix: uniquePrefix('browser-session'), busClusterNodes: inject('busClusterNodes') || null };
    const pods: number[] = [];
    const shortPods: number[] = [];
    guestBalancer = await startBalancer(pods);
    userBalancer = await startBalancer(pods);
    shortBalancer = await startBalancer(shortPods);
    const env = {
      CORS_ORIGINS: [guestBalancer.url, userBalancer.url, shortBalancer.url].join(','),
      MESSAGE_RATE_LIMIT_PER_MINUTE: '1000',
      // The paging test lists more rooms than a page holds.
      ROOM_CREATE_RATE_LIMIT_PER_MINUTE: '1000',
    };
    [pod, shortPod] = await Promise.all([
      spawnGateway(cluster, { ...env, POD_NAME: 'session-pod' }),
      // Its dev login signs tokens for 15 s (PROTOCOL §9): the page warns at once, and they expire.
      spawnGateway(cluster, { ...env, POD_NAME: 'session-pod-short', JWT_MAX_LIFETIME_SECONDS: '15' }),
    ]);
    pods.push(port(pod));
    shortPods.push(port(shortPod));
    browser = await launchChromium();
    carolToken = (await devLogin(pod.url, '박민수')).accessToken;
    carol = io(`${pod.url}${CHAT_NAMESPACE}`, { auth: { token: carolToken }, transports: ['websocket'] });
    await new Promise<void>((resolve, reject) => {
      carol.once('connect', resolve);
      carol.once('connect_error', reject);
    });
  });

  afterAll(async () => {
    carol?.disconnect();
    await pages.closeAll();
    await browser?.close().catch(() => undefined);
    await Promise.allSettled([pod?.kill('SIGKILL'), shortPod?.kill('SIGKILL')]);
    await Promise.allSettled([guestBalancer?.close(), userBalancer?.close(), shortBalancer?.close()]);
  });

  it('lets a guest read the room list and a room’s history without a socket, then join the room by signing in', async () => {
    await carolsRoom('손님이 읽는 방', 70);
    const guest = await pages.open(`${guestBalancer.url}/`, 'guest');
    const sockets: string[] = [];
    guest.on('websocket', (socket) => sockets.push(socket.url()));

    // No sign-in needed: the list and the room are there, read only.
    await roomItem(guest, '손님이 읽는 방').click();
    await message(guest, '손님이 읽는 방 70').waitFor();
    expect(await guest.locator('#message-list li.message').count()).toBe(50);
    await guest.locator('#room-banner[data-kind=guest]').waitFor();
    expect(await guest.locator('#composer').isHidden()).toBe(true);
    expect(await guest.locator('#emoji-bar').isHidden()).toBe(true);
    expect(await guest.locator('#leave-room').isHidden()).toBe(true);
    expect(await guest.locator('#create-room').isHidden()).toBe(true);
    expect(await guest.locator('#sign-in').isVisible()).toBe(true);
    expect(await guest.getAttribute('#status', 'data-state')).toBe('offline');
    // Scrolling back pages up as for a member.
    await guest.click('#load-older');
    await message(guest, '손님이 읽는 방 1').waitFor();
    expect(await guest.locator('#message-list li.message').count()).toBe(70);
    // Nobody joined: Carol is the room's only member.
    expect(await guest.textContent('#member-count')).toBe('1명');
    expect(sockets).toEqual([]);

    // Signing in carries on as a member, in the room that was being read.
    await signIn(guest, '손정민');
    expect(await guest.locator('#sign-in').isHidden()).toBe(true);
    await expect.poll(() => guest.textContent('#member-count')).toBe('2명');
    await expect.poll(() => guest.locator('#send').isDisabled()).toBe(false);
    expect(await guest.locator('#room-banner').isHidden()).toBe(true);
    await send(guest, '로그인하고 왔어요');
    expect(sockets).toHaveLength(1);
  });

  it('pages through a room list longer than a page, and keeps the pages on a refresh', async () => {
    const { accessToken } = await devLogin(pod.url, '방부자');
    for (let i = 1; i <= 60; i++) await createRoom(pod.url, accessToken, `목록 ${i}`);
    const guest = await pages.open(`${guestBalancer.url}/`, 'lister');
    await roomItem(guest, '목록 60').waitFor();
    const rooms = guest.locator('#room-list .room-item');
    expect(await rooms.count()).toBe(50);
    // The oldest rooms are on the next page.
    expect(await roomItem(guest, '손님이 읽는 방').count()).toBe(0);
    await guest.click('#more-rooms');
    await roomItem(guest, '손님이 읽는 방').waitFor();
    const all = await rooms.count();
    expect(all).toBeGreaterThanOrEqual(61);
    expect(await guest.locator('#more-rooms').isHidden()).toBe(true);
    expect(await roomItem(guest, '목록 1').count()).toBe(1);

    await guest.click('#refresh-rooms');
    await guest.waitForResponse(/\/api\/rooms\?limit=/);
    expect(await rooms.count()).toBe(all);
  });

  it('says once, not at every refresh, that the server cannot be reached', async () => {
    const guest = await pages.open(`${guestBalancer.url}/`, 'offline');
    await roomItem(guest, '목록 60').waitFor();
    const refreshFails = async () => {
      const failed = guest.waitForEvent('requestfailed', (request) => request.url().includes('/api/rooms?'));
      await guest.click('#refresh-rooms');
      await failed;
    };
    const hideToast = () => guest.locator('#toast').evaluate((box) => ((box as unknown as { hidden: boolean }).hidden = true));

    try {
      guestBalancer.cut();
      await refreshFails();
      await expect.poll(() => guest.textContent('#toast')).toBe(UNREACHABLE);
      await hideToast();
      // The same outage, refreshed again (as the 20 s timer does): nothing more is said.
      await refreshFails();
      await refreshFails();
      expect(await guest.locator('#toast').isHidden()).toBe(true);

      // Back, then away again: a new outage is said again.
      guestBalancer.refusing = false;
      const answered = guest.waitForResponse(/\/api\/rooms\?limit=/);
      await guest.click('#refresh-rooms');
      await answered;
      guestBalancer.cut();
      await refreshFails();
      await expect.poll(() => guest.locator('#toast').isVisible()).toBe(true);
    } finally {
      guestBalancer.refusing = false;
    }
  });

  it('drops the toast of a scroll-back that failed after another room was picked', async () => {
    const guest = await pages.open(`${guestBalancer.url}/`, 'scroller');
    await carolsRoom('잠깐 들른 방', 1);
    await guest.locator('#more-rooms').click();
    await roomItem(guest, '손님이 읽는 방').click();
    await message(guest, '손님이 읽는 방 70').waitFor();

    // The page of older messages is slow to come, and fails once another room is on screen.
    const { requested, release: fail } = await holdRequests(guest, /\/messages\?.*before=/, (route) => route.abort('failed'));
    await guest.click('#load-older');
    await requested;
    await pickRoom(guest, '잠깐 들른 방');
    await message(guest, '잠깐 들른 방 1').waitFor();

    const failed = guest.waitForEvent('requestfailed', (request) => request.url().includes('before='));
    fail();
    await failed;
    await guest.waitForTimeout(500);
    expect(await guest.locator('#toast').isHidden()).toBe(true);
    await guest.unroute(/\/messages\?.*before=/);
  });

  it('joins the room once connected again when a network blip cuts off the join', async () => {
    const user = await pages.open(`${userBalancer.url}/`, 'joiner');
    // The page's socket goes through here: the first join-room it sends is lost with the connection.
    let dropJoin = true;
    await user.routeWebSocket(/\/socket\.io\//, (ws) => {
      const server = ws.connectToServer();
      ws.onMessage((frame) => {
        if (dropJoin && typeof frame === 'string' && frame.includes('"join-room"')) {
          dropJoin = false;
          ws.close();
          server.close();
          return;
        }
        server.send(frame);
      });
      server.onMessage((frame) => ws.send(frame));
    });
    // The route is put into the page on a navigation.
    await user.reload();
    await signIn(user, '최하늘');
    await pickRoom(user, '잠깐 들른 방');
    await user.locator('#status[data-state=online]').waitFor();
    await expect.poll(() => user.locator('#send').isDisabled()).toBe(false);
    expect(dropJoin).toBe(false);
    expect(await user.locator('#room-view').isVisible()).toBe(true);
    await expect.poll(() => user.textContent('#member-count')).toBe('2명');
    await send(user, '끊겼다가 들어왔어요');
    expect(await user.textContent('#toast')).not.toBe(NO_ANSWER);
  });

  it('warns before the token expires, then says the session ended and keeps the room to read', async () => {
    const user = await pages.open(`${shortBalancer.url}/`, 'short');
    await signIn(user, '한지민');
    // 15 s left: within the warning's time.
    await user.locator('#session-banner').waitFor();
    expect(await user.textContent('#session-banner')).toMatch(/^로그인이 1?\d초 후 만료됩니다/);
    await pickRoom(user, '잠깐 들른 방');
    await expect.poll(() => user.locator('#send').isDisabled()).toBe(false);

    await user.locator('#sign-in').waitFor({ timeout: 30_000 });
    await expect.poll(() => user.textContent('#toast')).toMatch(/^로그인이 만료되었습니다/);
    expect(await user.textContent('#toast')).not.toBe(ERRORS.TOKEN_EXPIRED.message);
    expect(await user.locator('#session-banner').isHidden()).toBe(true);
    expect(await user.inputValue('#nickname')).toBe('한지민');
    // The room stays on screen, to read.
    await user.locator('#room-banner[data-kind=guest]').waitFor();
    expect(await user.textContent('#room-title')).toBe('잠깐 들른 방');
    await message(user, '잠깐 들른 방 1').waitFor();
  });

  it('had no uncaught errors in the pages', () => {
    expect(pages.errors).toEqual([]);
  });
});
