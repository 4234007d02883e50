import { describe, expect } from 'vitest';
import {
  connect,
  createRoom,
  emitAck,
  makeUser,
  record,
  request,
  sleep,
  spawnGateway,
  type GatewayProcess,
} from '@chat/testing';
import { clusterTest, type TestCluster } from '../support/index.ts';

/**
 * A pod that dies between a COMMIT and its broadcast leaves a stored message nobody was told
 * about. Its own clients catch up when they reconnect; the room's members on other pods would
 * only notice at the room's next message (the `seq` jump), which in a quiet room may never
 * come. The worker's presence GC, which finds the dead pod, tells those rooms to resync.
 */

const it = clusterTest({ pods: 1, ownDatabase: true });
let cluster: TestCluster;
/** Crashes (SIGKILL, by the fault hook) right after its second committed message. */
let doomedGateway: Promise<GatewayProcess>;

it.beforeAll(({ cluster: started }) => {
  cluster = started;
  doomedGateway = spawnGateway(cluster, { POD_NAME: 'crashes-after-commit', FAULT_CRASH_AFTER_COMMIT: '2' });
  doomedGateway.catch(() => undefined);
});

describe('a pod that dies after COMMIT and before the broadcast', () => {
  it('the worker tells the rooms where its message may be the newest to resync, and the message is there to fetch', { timeout: 90_000 }, async ({ startWorker }) => {
    const [a] = cluster.pods;
    await startWorker({ PRESENCE_GC_INTERVAL_MS: '500' });
    const gateway = await doomedGateway;
    const alice = await makeUser('김철수');
    const bob = await makeUser('이영희');
    const shared = (await createRoom(a!.url, alice)).roomId;
    const busy = (await createRoom(a!.url, alice)).roomId;
    const alicesOwn = (await createRoom(a!.url, alice)).roomId;

    const watcher = await connect(a!.url, alice.token);
    for (const roomId of [shared, busy, alicesOwn]) expect(await emitAck(watcher, 'join-room', { roomId })).toMatchObject({ ok: true });
    const sender = await connect(gateway.url, bob.token);
    for (const roomId of [shared, busy]) expect(await emitAck(sender, 'join-room', { roomId })).toMatchObject({ ok: true });
    // Bob's message in the busy room was broadcast, and Alice has written there since.
    expect(await emitAck(sender, 'send-message', { roomId: busy, type: 'text', content: '안녕' })).toMatchObject({ ok: true });
    expect(await emitAck(watcher, 'send-message', { roomId: busy, type: 'text', content: '반가워' })).toMatchObject({ ok: true });
    const delivered = record(watcher, 'new-message');
    const resyncs = record(watcher, 'resync');

    sender.emit('send-message', { roomId: shared, type: 'text', content: '마지막 메시지', clientMessageId: 'last-words' });
    const exit = await Promise.race([gateway.exited, sleep(15_000).then(() => 'still running')]);
    expect(exit, 'the gateway crashed after its second commit').toBe('SIGKILL');
    const crashedAt = Date.now();

    // Stored, and never broadcast: the hook killed the process before the broadcast.
    const history = await request<{ messages: { content: string; seq: number }[] }>(a!.url, 'GET', `/api/rooms/${shared}/messages`, {
      token: alice.token,
    });
    expect(history.body.messages.map((m) => m.content)).toContain('마지막 메시지');

    // The GC declares the pod dead 15 s after its last heartbeat.
    const deadline = crashedAt + 40_000;
    while (Date.now() < deadline && resyncs.length === 0) await sleep(200);
    expect(resyncs, 'a resync for the room within 40 s').toEqual([{ roomId: shared }]);
    console.log(`resync after a crash between COMMIT and broadcast: ${Date.now() - crashedAt} ms after the crash`);
    expect(delivered).toEqual([]);

    // Only rooms where the dead pod's message may be the newest: not the busy room, whose newest
    // message came from a live pod, nor Alice's own room, which had none of its users.
    await sleep(1500);
    expect(resyncs).toEqual([{ roomId: shared }]);
  });
});
