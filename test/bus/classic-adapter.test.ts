import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { roomChannel } from '@chat/protocol';
import { closeAllSockets, connect, createRoom, emitAck, makeUser, nextEvent } from '@chat/testing';
import { createChatEmitter } from '../../apps/worker/src/infrastructure/chat-emitter.ts';
import { startCluster, type TestCluster } from '../support/index.ts';

/**
 * BUS_ADAPTER=classic, kept to measure the sharded bus against (`pnpm bench:scale`): gateways
 * on PUBLISH/PSUBSCRIBE still carry a room across pods, and the worker's emitter in that mode
 * still reaches them.
 */

let cluster: TestCluster;
let redis: Redis;

beforeAll(async () => {
  cluster = await startCluster(2, { BUS_ADAPTER: 'classic', REDIS_BUS_CLUSTER_NODES: '' });
  redis = new Redis(inject('redisUrl'));
});
afterAll(async () => {
  closeAllSockets();
  redis?.disconnect();
  await cluster?.close();
});

describe('the classic adapter', () => {
  it('carries a message across pods, and the worker\'s announcements', async () => {
    const [a, b] = cluster.pods;
    const alice = await makeUser('김철수');
    const bob = await makeUser('이영희');
    const { roomId } = await createRoom(a!.url, alice);
    const onA = await connect(a!.url, alice.token);
    const onB = await connect(b!.url, bob.token);
    expect((await emitAck(onA, 'join-room', { roomId })).ok).toBe(true);
    expect((await emitAck(onB, 'join-room', { roomId })).ok).toBe(true);

    const crossed = nextEvent(onB, 'new-message');
    expect((await emitAck(onA, 'send-message', { roomId, type: 'text', content: '안녕' })).ok).toBe(true);
    expect((await crossed).content).toBe('안녕');

    const emitter = createChatEmitter(redis, { redisPrefix: cluster.redisPrefix, adapter: 'classic', onError: () => undefined });
    const heard = Promise.all([nextEvent(onA, 'room-expired'), nextEvent(onB, 'room-expired')]);
    await emitter.to(roomChannel(roomId)).emit('room-expired', { roomId, changeSeq: 1 });
    expect(await heard).toEqual([{ roomId, changeSeq: 1 }, { roomId, changeSeq: 1 }]);
  });
});
