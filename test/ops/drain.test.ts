import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { io, type Socket } from 'socket.io-client';
import {
  createRoom,
  killAllProcesses,
  makeUser,
  openTestDatabase,
  sleep,
  spawnGateway,
  uniquePrefix,
  type GatewayProcess,
  type TestUser,
} from '@chat/testing';
import type { Sql } from 'postgres';

const CLIENTS = 20;
const DRAIN_WINDOW_MS = 2000;

let prefix: string;
let pods: GatewayProcess[];
let sql: Sql;

beforeAll(async () => {
  prefix = uniquePrefix('drain');
  const cluster = { databaseUrl: inject('databaseUrl'), redisUrl: inject('redisUrl'), redisPrefix: prefix, busClusterNodes: inject('busClusterNodes') || null };
  const env = { DRAIN_WINDOW_MS: String(DRAIN_WINDOW_MS), MESSAGE_RATE_LIMIT_PER_MINUTE: '100000', SHUTDOWN_TIMEOUT_MS: '20000' };
  pods = await Promise.all([spawnGateway(cluster, env), spawnGateway(cluster, env)]);
  sql = openTestDatabase();
});

afterAll(async () => {
  await killAllProcesses();
  await sql.end();
});

/**
 * A client as a load balancer would treat it: it starts on one pod and, when that pod goes
 * away, reconnects to the next one in the list (the "load balancer"). It sends steadily with
 * unique clientMessageIds and keeps what was acknowledged.
 */
function steadyClient(user: TestUser, roomId: string, urls: string[], first: number) {
  const acked = new Set<string>();
  const received = new Set<string>();
  let sent = 0;
  let reconnects = 0;
  let drainNotices = 0;
  let stopped = false;
  let socket!: Socket;
  let current = first;
  let reconnectedAt: number | null = null;

  const open = (index: number) => {
    current = index;
    socket = io(`${urls[index]}/socket`, { transports: ['websocket'], auth: { token: user.token }, reconnection: false, forceNew: true });
    socket.on('new-message', (message: { messageId: string }) => received.add(message.messageId));
    socket.on('server-draining', () => (drainNotices += 1));
    socket.on('connect', () => {
      if (index !== first) reconnectedAt ??= Date.now();
    });
    socket.on('disconnect', () => {
      if (stopped) return;
      reconnects += 1;
      setTimeout(() => open((current + 1) % urls.length), 50);
    });
  };
  open(first);

  const loop = (async () => {
    while (!stopped) {
      if (socket.connected) {
        const clientMessageId = `${user.userId.slice(0, 8)}-${sent++}`;
        try {
          const ack = await socket.timeout(3000).emitWithAck('send-message', { roomId, type: 'text', content: `m${sent}`, clientMessageId });
          if (ack?.ok) acked.add(ack.data.messageId);
        } catch {
          // unknown outcome: the checker below only trusts acknowledgements
        }
      }
      await sleep(40);
    }
  })();

  return {
    acked,
    received,
    get reconnects() {
      return reconnects;
    },
    get drainNotices() {
      return drainNotices;
    },
    get reconnectedAt() {
      return reconnectedAt;
    },
    get connectedTo() {
      return socket.connected ? current : -1;
    },
    async stop() {
      stopped = true;
      await loop;
      socket.close();
    },
  };
}

describe('SIGTERM drains a pod under load', () => {
  it('loses no acknowledged message; clients move to the other pod and keep their rooms', async () => {
    const [a, b] = pods as [GatewayProcess, GatewayProcess];
    const users = await Promise.all(Array.from({ length: CLIENTS }, (_, i) => makeUser(`사용자${i}`)));
    const room = await createRoom(a.url, users[0]!);
    // Membership first, over the pod that will survive.
    for (const user of users) {
      const s = io(`${b.url}/socket`, { transports: ['websocket'], auth: { token: user.token }, forceNew: true, reconnection: false });
      await s.emitWithAck('join-room', { roomId: room.roomId });
      s.close();
    }
    const clients = users.map((user, i) => steadyClient(user, room.roomId, [a.url, b.url], i % 2));
    await sleep(1500);

    const signalledAt = Date.now();
    a.child.kill('SIGTERM');
    const exit = await a.exited;
    const exitMs = Date.now() - signalledAt;
    await sleep(1500);
    await Promise.all(clients.map((client) => client.stop()));

    // The pod left on its own, inside a 30 s grace period, with a clean exit code.
    expect(exit).toBe(0);
    expect(exitMs).toBeLessThan(DRAIN_WINDOW_MS + 8000);
    const moved = clients.filter((_, i) => i % 2 === 0);
    for (const client of moved) {
      expect(client.drainNotices).toBe(1);
      expect(client.reconnectedAt).not.toBeNull();
      expect(client.reconnectedAt! - signalledAt).toBeLessThan(DRAIN_WINDOW_MS + 3000);
    }

    // Every acknowledged message is stored exactly once.
    const acked = clients.flatMap((client) => [...client.acked]);
    expect(acked.length).toBeGreaterThan(CLIENTS * 10);
    const rows = await sql<{ id: string }[]>`select id from messages where room_id = ${room.roomId}`;
    const stored = new Set(rows.map((row) => row.id));
    expect(acked.filter((id) => !stored.has(id))).toEqual([]);
    expect(rows.length).toBe(stored.size);
    const [numbering] = await sql<{ seqs: number; max: number }[]>`
      select count(distinct seq)::int as seqs, max(seq)::int as max from messages where room_id = ${room.roomId}`;
    expect(numbering?.seqs).toBe(numbering?.max);

    // The moved clients were back in the room: they received messages sent after the move.
    for (const client of moved) expect(client.received.size).toBeGreaterThan(0);
    console.log(
      `drain: ${acked.length} acknowledged, pod exit after ${exitMs} ms, ` +
        `reconnect within ${Math.max(...moved.map((c) => c.reconnectedAt! - signalledAt))} ms`,
    );
  }, 60_000);
});
