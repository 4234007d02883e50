import { describe, expect } from 'vitest';
import { createRoom, emitAck, makeUser, monitorRedis, nextEvent, record, sleep } from '@chat/testing';
import { clusterTest } from '../support/index.ts';

/**
 * PROTOCOL §2: a join from a socket already in the room (a client repeating its joins after a
 * reconnect) is free of the membership budget, and now of every write and publish too: 32
 * sockets repeating one join did ~1,200 Postgres commits a second and moved the user's sockets
 * over the bus each time, and another user's acks went from 6-12 ms to 58-184 ms.
 */

const it = clusterTest({ pods: 2 });

describe('a repeat join-room [ext]', () => {
  it('writes nothing and publishes nothing, and answers the stored memberCount', async ({ cluster, sql, connect }) => {
    const [a, b] = cluster.pods;
    const owner = await makeUser('방장');
    const { roomId } = await createRoom(a!.url, owner);
    const ownerSocket = await connect(b!.url, owner.token);
    expect(await emitAck(ownerSocket, 'join-room', { roomId })).toEqual({ ok: true, data: { roomId, memberCount: 1, lastChangeSeq: expect.any(Number) } });

    const user = await makeUser('재접속');
    const socket = await connect(a!.url, user.token);
    const otherDevice = await connect(b!.url, user.token);
    const moved = nextEvent(otherDevice, 'room-joined');
    expect(await emitAck(socket, 'join-room', { roomId })).toEqual({ ok: true, data: { roomId, memberCount: 2, lastChangeSeq: expect.any(Number) } });
    await moved;
    // A socket connected afterwards is put into the room by its handshake.
    const reconnected = await connect(b!.url, user.token);

    // Every table a join writes is locked against writes (SHARE: reads go on, an INSERT or
    // UPDATE waits for the lock): a repeat join that wrote anything would hang until this lock
    // is released, or time out.
    let release!: () => void;
    let locked!: () => void;
    const isLocked = new Promise<void>((resolve) => (locked = resolve));
    const held = sql.begin(async (tx) => {
      await tx`lock table room_members, rooms, room_events, users in share mode`;
      locked();
      await new Promise<void>((resolve) => (release = resolve));
    });
    await isLocked;
    // What the pods publish on the bus meanwhile (this cluster's channels). With TEST_BUS=cluster
    // the bus is elsewhere: the lock still tells.
    const published: string[] = [];
    const monitor = cluster.busClusterNodes
      ? null
      : await monitorRedis(cluster.redisUrl, ([command, channel]) => {
          if (/^s?publish$/i.test(command ?? '') && channel?.startsWith(`${cluster.redisPrefix}:socket.io`)) published.push(channel);
        });
    const otherHeard = record(otherDevice, 'room-joined');
    const ownerHeard = record(ownerSocket, 'user-joined');
    const heard = record(socket, 'room-joined');
    try {
      await sleep(100);
      expect(published).toEqual([]);
      for (let again = 0; again < 5; again++) {
        expect(await emitAck(socket, 'join-room', { roomId }, 2000), `repeat ${again + 1}`).toEqual({ ok: true, data: { roomId, memberCount: 2, lastChangeSeq: expect.any(Number) } });
      }
      expect(await emitAck(reconnected, 'join-room', { roomId }, 2000)).toEqual({ ok: true, data: { roomId, memberCount: 2, lastChangeSeq: expect.any(Number) } });
      await sleep(200);
      expect(published).toEqual([]);
    } finally {
      monitor?.close();
      release();
      await held;
    }
    // The caller hears its room-joined; nobody else hears anything.
    expect(heard).toEqual(Array(5).fill({ roomId, memberCount: 2, lastChangeSeq: expect.any(Number) }));
    expect(otherHeard).toEqual([]);
    expect(ownerHeard).toEqual([]);
    const [row] = await sql<{ member_count: number; events: number }[]>`
      select member_count, (select count(*)::int from room_events where room_id = ${roomId}) as events from rooms where id = ${roomId}`;
    expect(row).toEqual({ member_count: 2, events: 2 });

    // The count is read, not remembered: a third member shows in the next repeat.
    const third = await connect(a!.url, (await makeUser('셋째')).token);
    expect(await emitAck(third, 'join-room', { roomId })).toEqual({ ok: true, data: { roomId, memberCount: 3, lastChangeSeq: expect.any(Number) } });
    expect(await emitAck(socket, 'join-room', { roomId })).toEqual({ ok: true, data: { roomId, memberCount: 3, lastChangeSeq: expect.any(Number) } });
  });

  it('still refuses a room that expired meanwhile', async ({ url, sql, connect }) => {
    const owner = await makeUser('방장');
    const { roomId } = await createRoom(url, owner);
    const socket = await connect(url, owner.token);
    expect((await emitAck(socket, 'join-room', { roomId })).ok).toBe(true);
    // Expired in the database only: the pod's cached expiry is still ahead, so the read decides.
    await sql`update rooms set expires_at = now() - interval '1 second' where id = ${roomId}`;
    const ack = await emitAck(socket, 'join-room', { roomId });
    expect(ack).toEqual({ ok: false, error: { message: '만료된 방입니다', code: 'ROOM_EXPIRED' } });
  });
});
