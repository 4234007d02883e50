import { Redis } from 'ioredis';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { busReady } from '@chat/bus';
import { createOccupancyQueue } from '@chat/presence';
import {
  closeAllSockets,
  connect,
  createRoom,
  createTestDatabase,
  emitAck,
  makeUser,
  nextEvent,
  request,
  sleep,
  startTcpRelay,
  uniquePrefix,
  type TcpRelay,
  type TestDatabase,
} from '@chat/testing';
import { createOccupancyMarks } from '../../apps/gateway/src/infrastructure/occupancy-marks.ts';
import { closeAllWorkers, startCluster, startTestWorker, type TestCluster } from '../support/index.ts';

/**
 * room-vacated must not be lost to a Redis blip on the gateway. The gateway tells the worker to
 * look at a user's rooms (an occupancy mark in Redis) when their first socket connects or their
 * last one goes; a mark is the only thing that has the worker look, so one that Redis does not
 * take, or a presence change that failed in Redis and so was never reported, left the room
 * `occupied` until that user's next presence change.
 */
const GRACE_MS = 1000;

describe('room-vacated across a Redis blip [ext]', () => {
  let database: TestDatabase;
  let relay: TcpRelay;
  let cluster: TestCluster;

  beforeAll(async () => {
    database = await createTestDatabase();
    relay = await startTcpRelay(inject('redisUrl'));
    const prefix = uniquePrefix('vacated-blip');
    // The gateway reaches Redis through the relay; the worker directly, on the same prefix.
    cluster = await startCluster(1, {
      DATABASE_URL: database.url,
      REDIS_URL: relay.url,
      REDIS_PREFIX: prefix,
      REDIS_BUS_CLUSTER_NODES: '',
      ROOM_OCCUPANCY_GRACE_MS: String(GRACE_MS),
    });
    await startTestWorker({ databaseUrl: database.url, redisUrl: inject('redisUrl'), redisPrefix: prefix, busClusterNodes: null });
  });
  afterAll(async () => {
    closeAllSockets();
    await relay?.close();
    await cluster?.close();
    await closeAllWorkers();
    await database?.drop();
  });

  it("is recorded when the last member's disconnect fails in Redis, once Redis answers again", { timeout: 60_000 }, async () => {
    const url = cluster.pods[0]!.url;
    const owner = await makeUser('방장');
    const room = await createRoom(url, owner);
    const socket = await connect(url, owner.token);
    const occupied = nextEvent(socket, 'room-occupied', 15_000);
    expect((await emitAck(socket, 'join-room', { roomId: room.roomId })).ok).toBe(true);
    await occupied;

    // The member leaves while the gateway's Redis is silent: the presence script fails.
    relay.freeze();
    socket.close();
    await sleep(1000);
    relay.thaw();

    const occupancy = async () =>
      ((await request(url, 'GET', `/api/rooms/${room.roomId}/changes`)).body.changes as { event: string }[])
        .map((change) => change.event)
        .filter((event) => event === 'room-occupied' || event === 'room-vacated');
    await expect.poll(occupancy, { timeout: 40_000, interval: 500 }).toEqual(['room-occupied', 'room-vacated']);
  });
});

describe('occupancy marks Redis did not take', () => {
  it('are sent again, with their due time, until Redis takes them', { timeout: 30_000 }, async () => {
    const prefix = uniquePrefix('marks');
    const relay = await startTcpRelay(inject('redisUrl'));
    // As the gateway's commands connection: fails fast, no offline queue.
    const throughRelay = new Redis(relay.url, { enableOfflineQueue: false, maxRetriesPerRequest: 1, retryStrategy: () => 100 });
    throughRelay.on('error', () => undefined);
    const direct = new Redis(inject('redisUrl'));
    try {
      expect(await busReady(throughRelay, 5000)).toBe(true);
      const marks = createOccupancyMarks(createOccupancyQueue(throughRelay, prefix), { graceMs: 60_000, logger: pino({ level: 'silent' }) });
      await relay.cut();
      const before = Date.now();
      marks.mark({ userId: 'u1' });
      marks.mark({ roomId: 'r1' });
      await expect.poll(() => marks.pending()).toBe(2);
      // Long enough that a due time counted from the retry would show.
      await sleep(1500);
      await relay.restore();

      await expect.poll(() => marks.pending(), { timeout: 15_000, interval: 100 }).toBe(0);
      const scored = await direct.zrange(`${prefix}:occupancy:pending`, 0, -1, 'WITHSCORES');
      expect(scored.filter((_, index) => index % 2 === 0).sort()).toEqual(['r:r1', 'u:u1']);
      // Due a grace after the mark was made, not after it was taken.
      for (const score of scored.filter((_, index) => index % 2 === 1).map(Number)) {
        expect(score).toBeGreaterThanOrEqual(before + 60_000);
        expect(score).toBeLessThan(before + 60_000 + 1000);
      }
      await marks.close();
    } finally {
      throughRelay.disconnect();
      direct.disconnect();
      await relay.close();
    }
  });
});
