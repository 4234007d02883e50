/**
 * What the browser tests of the chat page share: Debian's Chromium driven by playwright-core,
 * a TCP "load balancer" per user in front of the gateway pods, a few REST calls made as a
 * script would, and the page actions every test repeats.
 */
import { existsSync } from 'node:fs';
import { connect, createServer, type Socket as NetSocket } from 'node:net';
import { chromium, type Browser, type BrowserContext, type Page, type Route } from 'playwright-core';
import { expect } from 'vitest';
import { freePort } from '@chat/testing';

export const CHROMIUM = '/usr/bin/chromium';

const requested = process.env.CHAT_BROWSER_TEST === '1';
/** Why the browser tests do not run here, or null when they do. */
export const browserSkipReason = !requested
  ? 'not requested (run `pnpm test:browser`)'
  : !existsSync(CHROMIUM)
    ? `${CHROMIUM} is missing; install it with \`apt-get install -y chromium\``
    : null;
if (requested && browserSkipReason) console.warn(`chat page browser test skipped: ${browserSkipReason}`);

export interface Balancer {
  url: string;
  /** The pod port the last connection went to. */
  lastPod: number | null;
  /** While true, new connections are refused (a balancer that has not noticed yet). */
  refusing: boolean;
  /** Cuts every connection open now and refuses new ones: the page is offline until `refusing` is cleared. */
  cut(): void;
  close(): Promise<void>;
}

/**
 * A TCP proxy on 127.0.0.1 that sends each connection to the first pod (port) of `pods` that
 * accepts it; `pods` is read per connection, so it may be filled in once the pods are up.
 */
export async function startBalancer(pods: readonly number[]): Promise<Balancer> {
  const port = await freePort();
  const open = new Set<NetSocket>();
  const track = (socket: NetSocket) => {
    open.add(socket);
    socket.once('close', () => open.delete(socket));
  };
  const server = createServer((client) => {
    track(client);
    client.on('error', () => client.destroy());
    if (balancer.refusing) {
      client.destroy();
      return;
    }
    const attempt = (index: number) => {
      const pod = pods[index];
      if (pod === undefined) {
        client.destroy();
        return;
      }
      const upstream = connect(pod, '127.0.0.1');
      let connected = false;
      upstream.once('connect', () => {
        connected = true;
        track(upstream);
        balancer.lastPod = pod;
        client.pipe(upstream);
        upstream.pipe(client);
        client.once('close', () => upstream.destroy());
        upstream.once('close', () => client.destroy());
      });
      upstream.on('error', () => {
        if (connected) client.destroy();
        else attempt(index + 1);
      });
    };
    attempt(0);
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const balancer: Balancer = {
    url: `http://127.0.0.1:${port}`,
    lastPod: null,
    refusing: false,
    cut() {
      balancer.refusing = true;
      for (const socket of open) socket.destroy();
    },
    async close() {
      for (const socket of open) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return balancer;
}

export async function devLogin(base: string, nickname: string): Promise<{ accessToken: string; userId: string }> {
  const response = await fetch(`${base}/api/auth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ nickname }),
  });
  expect(response.status).toBe(200);
  return (await response.json()) as { accessToken: string; userId: string };
}

export async function createRoom(base: string, token: string, name: string, ttlSeconds?: number): Promise<{ roomId: string }> {
  const response = await fetch(`${base}/api/rooms`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify(ttlSeconds ? { name, ttlSeconds } : { name }),
  });
  expect(response.status).toBe(201);
  return (await response.json()) as { roomId: string };
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}

/** The pages a test opens, each in a context of its own (its own sessionStorage: its own user), and their uncaught errors. */
export function pageSet(browser: () => Browser) {
  const contexts: BrowserContext[] = [];
  const errors: string[] = [];
  return {
    errors,
    async open(url: string, name: string): Promise<Page> {
      const context = await browser().newContext({ viewport: { width: 1180, height: 720 }, locale: 'ko-KR' });
      contexts.push(context);
      const page = await context.newPage();
      page.on('pageerror', (error) => errors.push(`${name}: ${error.message}`));
      await page.goto(url);
      return page;
    },
    async closeAll(): Promise<void> {
      await Promise.allSettled(contexts.map((context) => context.close()));
    },
  };
}

export const messageIds = (page: Page) =>
  page.locator('#message-list li.message').evaluateAll((items) =>
    items.map((item) => (item as unknown as { dataset: { messageId: string } }).dataset.messageId),
  );

export const message = (page: Page, text: string) =>
  page.locator('#message-list li.message').filter({ has: page.getByText(text, { exact: true }) });

export async function signIn(page: Page, nickname: string): Promise<void> {
  await page.fill('#nickname', nickname);
  await page.click('#sign-in-form button[type=submit]');
  await page.locator('#status[data-state=online]').waitFor();
  // Waited on the page, not with expect.poll: a beforeAll may sign in too.
  await page.locator('#me', { hasText: new RegExp(`^${nickname}$`) }).waitFor();
}

/** The token the signed-in page keeps for its session (what its socket's handshake sends). */
export async function sessionToken(page: Page): Promise<string> {
  const stored = await page.evaluate(() => (globalThis as unknown as { sessionStorage: { getItem(key: string): string | null } }).sessionStorage.getItem('chat.session'));
  const { token } = JSON.parse(stored ?? '{}') as { token?: string };
  expect(token).toBeTruthy();
  return token!;
}

export async function send(page: Page, text: string): Promise<void> {
  await page.fill('#message-input', text);
  await page.click('#send');
  await message(page, text).waitFor();
}

/**
 * Holds the page's requests matching `pattern` until `release()`, then lets each go on as
 * `then` says (continue, abort…). `requested` resolves once the first one has come.
 */
export async function holdRequests(page: Page, pattern: RegExp, then: (route: Route) => Promise<void>): Promise<{ requested: Promise<void>; release(): void }> {
  let release!: () => void;
  const held = new Promise<void>((resolve) => {
    release = resolve;
  });
  let asked!: () => void;
  const requested = new Promise<void>((resolve) => {
    asked = resolve;
  });
  await page.route(pattern, async (route) => {
    asked();
    await held;
    await then(route);
  });
  return { requested, release };
}
