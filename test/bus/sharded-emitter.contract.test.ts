import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  SHARDED_ADAPTER_VERSION,
  busChannelPrefix,
  redisTarget,
  createBusPublisher,
  createShardedEmitter,
  parseBusClusterNodes,
  type BusClient,
  type ShardedEmitter,
} from '@chat/bus';
import { CHAT_NAMESPACE, roomChannel, userChannel, type ServerToClientEvents } from '@chat/protocol';
import { WORKSPACE_ROOT, closeAllSockets, connect, createRoom, emitAck, makeUser, nextEvent, sleep, type TestSocket } from '@chat/testing';
import { startCluster, type TestCluster } from '../support/index.ts';

/**
 * The worker's emitter (@chat/bus createShardedEmitter) against real gateways running the
 * sharded adapter, on whichever bus the run uses (TEST_BUS): each kind of emit the worker sends
 * reaches the sockets on every pod. The emitter writes the wire format of one adapter version;
 * this also fails when the lockfile moves the adapter to another.
 */

let cluster: TestCluster;
let publisher: BusClient;
let emitter: ShardedEmitter<ServerToClientEvents>;

beforeAll(async () => {
  cluster = await startCluster(2);
  publisher = createBusPublisher(redisTarget({ url: cluster.redisUrl }, cluster.busClusterNodes ? parseBusClusterNodes(cluster.busClusterNodes) : null));
  publisher.on('error', () => undefined);
  emitter = createShardedEmitter<ServerToClientEvents>(publisher, {
    channelPrefix: busChannelPrefix(cluster.redisPrefix),
    nsp: CHAT_NAMESPACE,
  });
});
afterAll(async () => {
  closeAllSockets();
  publisher?.disconnect();
  await cluster?.close();
});

describe('the pinned adapter', () => {
  it('is the version whose format the emitter writes, installed and in the lockfile', () => {
    const require = createRequire(`${WORKSPACE_ROOT}apps/gateway/package.json`);
    const installed = require('@socket.io/redis-adapter/package.json') as { version: string };
    expect(installed.version).toBe(SHARDED_ADAPTER_VERSION);
    const lockfile = readFileSync(`${WORKSPACE_ROOT}pnpm-lock.yaml`, 'utf8');
    const pinned = [...lockfile.matchAll(/^ {2}'@socket\.io\/redis-adapter@([^(']+)/gm)].map((match) => match[1]);
    expect([...new Set(pinned)]).toEqual([SHARDED_ADAPTER_VERSION]);
  });
});

async function waitUntil(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition() && Date.now() < deadline) await sleep(20);
  if (!condition()) throw new Error('condition not met in time');
}

/** A room with alice connected to pod A and bob to pod B, both members. */
async function roomOnTwoPods() {
  const alice = await makeUser('김철수');
  const bob = await makeUser('이영희');
  const { roomId } = await createRoom(cluster.pods[0]!.url, alice);
  const onA = await connect(cluster.pods[0]!.url, alice.token);
  const onB = await connect(cluster.pods[1]!.url, bob.token);
  expect((await emitAck(onA, 'join-room', { roomId })).ok).toBe(true);
  expect((await emitAck(onB, 'join-room', { roomId })).ok).toBe(true);
  return { alice, bob, roomId, onA, onB };
}

const both = <E extends keyof ServerToClientEvents>(sockets: TestSocket[], event: E) =>
  Promise.all(sockets.map((socket) => nextEvent(socket, event)));

describe('each emit of the worker', () => {
  it('room-expiring, room-expired, presence and resync to a room reach its members on every pod', async () => {
    const { roomId, onA, onB, alice } = await roomOnTwoPods();
    const room = roomChannel(roomId);
    const expiresAt = new Date(Date.now() + 60_000).toISOString();
    const cases = [
      ['room-expiring', { roomId, expiresAt }],
      ['presence', { roomId, userId: alice.userId, nicknameMask: '김*수', online: false }],
      ['resync', { roomId }],
      ['room-expired', { roomId }],
    ] as const;
    for (const [event, payload] of cases) {
      const seen = both([onA, onB], event);
      expect(await (emitter.to(room).emit as (e: string, p: unknown) => Promise<boolean>)(event, payload)).toBe(true);
      expect(await seen).toEqual([payload, payload]);
    }
  });

  it('socketsLeave takes the room out of every pod (and the pods unsubscribe)', async () => {
    const { roomId } = await roomOnTwoPods();
    const room = roomChannel(roomId);
    const rooms = () => cluster.pods.map((pod) => pod.gateway.nsp.adapter.rooms.has(room));
    expect(rooms()).toEqual([true, true]);
    expect(await emitter.in(room).socketsLeave(room)).toBe(true);
    await waitUntil(() => rooms().every((has) => !has));
  });

  it('socketsJoin puts a user\'s sockets into a room on every pod; each is told to resync once its pod is subscribed, then hears the room', async () => {
    const carol = await makeUser('박민수');
    const onA = await connect(cluster.pods[0]!.url, carol.token);
    const onB = await connect(cluster.pods[1]!.url, carol.token);
    const roomId = randomUUID();
    const resyncs = both([onA, onB], 'resync');
    expect(await emitter.in(userChannel(carol.userId)).socketsJoin(roomChannel(roomId))).toBe(true);
    expect(await resyncs).toEqual([{ roomId }, { roomId }]);
    const heard = both([onA, onB], 'room-expired');
    await emitter.to(roomChannel(roomId)).emit('room-expired', { roomId, changeSeq: 1 });
    expect(await heard).toEqual([{ roomId, changeSeq: 1 }, { roomId, changeSeq: 1 }]);
  });

  it('disconnectSockets closes a user\'s sockets on every pod', async () => {
    const dave = await makeUser('최지우');
    const sockets = [await connect(cluster.pods[0]!.url, dave.token), await connect(cluster.pods[1]!.url, dave.token)];
    const closed = Promise.all(sockets.map((socket) => new Promise((resolve) => socket.once('disconnect', resolve))));
    expect(await emitter.in(userChannel(dave.userId)).disconnectSockets(true)).toBe(true);
    await closed;
    expect(sockets.every((socket) => !socket.connected)).toBe(true);
  });
});
