import { createServer, type Server as HttpServer } from 'node:http';
import { Server } from 'socket.io';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort, sleep } from '@chat/testing';
import { ClientGroup } from '../bench/lib/driver.ts';
import { Speaker } from '../bench/lib/speaker.ts';

/**
 * The load generator shared by `pnpm bench` and `pnpm loadtest` (test/bench/lib), against a
 * real Socket.IO server: a pod that goes away and comes back must cost each of its clients one
 * disconnect and one reconnect, not a growing crowd of duplicate sockets.
 */

let io: Server | null = null;
let http: HttpServer | null = null;

async function listen(port: number): Promise<Server> {
  http = createServer();
  io = new Server(http, { transports: ['websocket'] });
  io.of('/socket').on('connection', () => undefined);
  await new Promise<void>((resolve) => http!.listen(port, '127.0.0.1', resolve));
  return io;
}

async function shutDown(): Promise<void> {
  const closing = io;
  io = http = null;
  // Closes every client connection too, as a pod that dies does.
  if (closing) await new Promise<void>((resolve) => closing.close(() => resolve()));
}

afterEach(shutDown);

describe('load generator', () => {
  it('does not report a refused connection attempt as a disconnect', async () => {
    const port = await freePort();
    let closes = 0;
    await expect(Speaker.connect({ url: `http://127.0.0.1:${port}`, namespace: '/socket', onClose: () => closes++, timeoutMs: 2000 })).rejects.toThrow();
    await sleep(200);
    expect(closes).toBe(0);
  });

  it('reconnects each client once after its server was away for a while', { timeout: 20_000 }, async () => {
    const port = await freePort();
    await listen(port);
    const clients = 5;
    const group = new ClientGroup(
      Array.from({ length: clients }, () => ({ url: `http://127.0.0.1:${port}`, auth: null, roomId: null })),
      '/socket',
      { reconnect: true, timeoutMs: 2000 },
    );
    try {
      expect((await group.open()).connected).toBe(clients);
      await shutDown();
      // Down long enough for several refused retries per client (they start at 0.5–1 s).
      await sleep(3000);
      const back = await listen(port);
      const deadline = Date.now() + 10_000;
      while (Date.now() < deadline && group.size < clients) await sleep(100);
      await sleep(1500); // any extra retry chains would land meanwhile
      expect(group.size).toBe(clients);
      expect(back.of('/socket').sockets.size).toBe(clients);
      expect(group.totals).toMatchObject({ disconnects: clients, reconnects: clients });
    } finally {
      group.close();
    }
  });
});
