import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { Server } from 'socket.io';
import { io as connectClient } from 'socket.io-client';
import { afterAll, describe, expect } from 'vitest';
import { createMembershipsRepository } from '@chat/db';
import { CHAT_NAMESPACE, roomChannel, userChannel } from '@chat/protocol';
import { createMembershipMoves } from '../../apps/gateway/src/realtime/membership-moves.ts';
import { createMembershipReconciler } from '../../apps/gateway/src/realtime/membership-reconciler.ts';
import type { ChatNamespace, SocketData } from '../../apps/gateway/src/realtime/types.ts';
import { databaseTest } from '../support/index.ts';

/**
 * The gateway's membership reconciler against a real `room_members` table and a real Socket.IO
 * server and client: two reads of one user's memberships at once, the older one finishing last
 * (held behind a slow query), must not put the user's socket back where the newer one found the
 * user gone.
 */

const it = databaseTest({ maxConnections: 4 });
const closing: (() => unknown)[] = [];
afterAll(async () => {
  for (const close of closing.reverse()) await close();
});

describe('membership reconciler', () => {
  it('lets the newest read of a user decide, whichever finishes last', async ({ sql }) => {
    const userId = randomUUID();
    const roomId = randomUUID();
    await sql`insert into users (id, nickname) values (${userId}, '이영희')`;
    await sql`insert into rooms (id, name, created_by, created_at, expires_at) values (${roomId}, 'reads', ${userId}, now(), now() + interval '1 hour')`;
    await sql`insert into room_members (room_id, user_id) values (${roomId}, ${userId})`;

    const httpServer = createServer();
    const server = new Server(httpServer);
    closing.push(() => new Promise((resolve) => server.close(() => resolve(undefined))));
    const nsp = server.of(CHAT_NAMESPACE) as unknown as ChatNamespace;
    nsp.use((socket, next) => {
      // Only the id is read by the reconciler (what the handshake would have set).
      socket.data.user = { id: userId } as SocketData['user'];
      void socket.join([userChannel(userId), roomChannel(roomId)]);
      next();
    });
    await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
    const client = connectClient(`http://127.0.0.1:${(httpServer.address() as AddressInfo).port}${CHAT_NAMESPACE}`, { transports: ['websocket'] });
    closing.push(() => client.close());
    await new Promise<void>((resolve) => client.on('connect', () => resolve()));
    const inRoom = () => nsp.adapter.rooms.get(roomChannel(roomId))?.has(client.id!) ?? false;
    expect(inRoom()).toBe(true);

    // The first read is held after it has read (a connection busy behind a slow query).
    const memberships = createMembershipsRepository(sql);
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let calls = 0;
    const reconciler = createMembershipReconciler({
      nsp,
      moves: createMembershipMoves(nsp),
      logger: pino({ level: 'silent' }),
      async membershipsOf(userIds) {
        const first = ++calls === 1;
        const found = await memberships.membershipsOfUsers(userIds);
        if (first) await held;
        return found;
      },
    });
    reconciler.checkAll();
    await expect.poll(() => calls).toBe(1);
    // The user leaves meanwhile (on another pod); the next check reads that and moves the socket out.
    await sql`delete from room_members where room_id = ${roomId} and user_id = ${userId}`;
    reconciler.checkAll();
    await expect.poll(() => inRoom()).toBe(false);
    // The first read ends last, with the membership it read before the leave.
    release();
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(inRoom()).toBe(false);
  });
});
