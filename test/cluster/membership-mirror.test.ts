import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { roomChannel } from '@chat/protocol';
import { closeAllSockets, connect, createRoom, emitAck, makeUser, record, startTcpRelay, uniquePrefix, type TcpRelay } from '@chat/testing';
import { startCluster, type TestCluster } from '../support/index.ts';

/**
 * Sockets mirror database membership (docs/ARCHITECTURE.md, PROTOCOL §14), moved by messages on
 * the bus. Pod A's Redis goes away while one device of a user joins a room there, and the
 * user's other device, on pod B, then leaves it: A cannot publish its join's move (it replays it
 * when Redis is back, late) and cannot hear B's leave. The database says "not a member" from the
 * leave on; once Redis is back, neither pod may keep a socket of the user in the room, where it
 * would hear the room's broadcasts: not B's (the replayed join is checked against the database),
 * not A's (the leave it never heard is found when its main channel comes back). Its own bus on
 * the standalone Redis, whatever the run's bus, so that the relay carries all of pod A's traffic.
 */

let relay: TcpRelay;
let podA: TestCluster;
let podB: TestCluster;

beforeAll(async () => {
  const prefix = uniquePrefix('mirror');
  relay = await startTcpRelay(inject('redisUrl'));
  podA = await startCluster(1, { REDIS_URL: relay.url, REDIS_BUS_CLUSTER_NODES: '', REDIS_PREFIX: prefix, POD_NAME: 'mirror-pod-a' });
  podB = await startCluster(1, {
    REDIS_URL: inject('redisUrl'),
    REDIS_BUS_CLUSTER_NODES: '',
    REDIS_PREFIX: prefix,
    DATABASE_URL: inject('databaseUrl'),
    POD_NAME: 'mirror-pod-b',
  });
}, 30_000);
afterAll(async () => {
  closeAllSockets();
  await podA?.close();
  await podB?.close();
  await relay?.close();
});

const inRoom = (pod: TestCluster, roomId: string, socketId: string | undefined) =>
  socketId !== undefined && (pod.pods[0]!.gateway.nsp.adapter.rooms.get(roomChannel(roomId))?.has(socketId) ?? false);

describe('membership moves across a Redis outage of one pod', () => {
  it('leaves no socket of the user in a room the database says it left', { timeout: 40_000 }, async () => {
    const A = podA.pods[0]!.url;
    const B = podB.pods[0]!.url;
    const owner = await makeUser('방장');
    const user = await makeUser('이영희');
    const { roomId } = await createRoom(B, owner);
    const ownerOnB = await connect(B, owner.token);
    expect((await emitAck(ownerOnB, 'join-room', { roomId })).ok).toBe(true);
    const onA = await connect(A, user.token);
    const onB = await connect(B, user.token);
    const heardOnA = record(onA, 'new-message');
    const heardOnB = record(onB, 'new-message');

    await relay.cut();
    // Pod A answers the join without Redis (the bus's confirmation is given up after 3 s).
    expect((await emitAck(onA, 'join-room', { roomId }, 10_000)).ok).toBe(true);
    expect(inRoom(podA, roomId, onA.id)).toBe(true);
    // Pod B never heard of that join; the user leaves the room from there.
    expect(await emitAck(onB, 'leave-room', { roomId })).toMatchObject({ ok: true, data: { roomId } });

    await relay.restore();
    // Pod A replays its join's move once it can publish (the room its user-joined went to
    // meanwhile is resynced with it), and hears its main channel again.
    await expect
      .poll(() => podA.pods[0]!.gateway.metrics.registry.getSingleMetricAsString('chat_publish_gap_resync_rooms_total'), { timeout: 20_000, interval: 200 })
      .toMatch(/chat_publish_gap_resync_rooms_total [1-9]/);
    const places = () => [inRoom(podA, roomId, onA.id), inRoom(podB, roomId, onB.id)];
    await expect.poll(places, { timeout: 10_000, interval: 50 }).toEqual([false, false]);
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(places()).toEqual([false, false]);

    // And the room's broadcasts reach neither device.
    expect((await emitAck(ownerOnB, 'send-message', { roomId, type: 'text', content: '나간 사람은 못 듣는다' })).ok).toBe(true);
    const probe = await emitAck(ownerOnB, 'send-message', { roomId, type: 'text', content: 'probe' });
    expect(probe.ok).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect([...heardOnA, ...heardOnB].map((message) => message.content)).toEqual([]);
  });
});
