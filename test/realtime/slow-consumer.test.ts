import { describe, expect } from 'vitest';
import { connect, createRoom, emitAck, makeUser, sleep, type TestSocket } from '@chat/testing';
import { clusterTest, startCluster, type TestPod } from '../support/index.ts';

/**
 * A client that stops reading its socket (a frozen tab, a hostile client, a dead network path
 * that still holds the TCP connection open) leaves every broadcast to its rooms queued in the
 * pod's memory until the heartbeat gives up on it, 40 s later.
 */

const MAX_QUEUED_BYTES = 256 * 1024;
const it = clusterTest({ pods: 1, env: { MESSAGE_RATE_LIMIT_PER_MINUTE: '1000000', SOCKET_MAX_QUEUED_BYTES: String(MAX_QUEUED_BYTES) } });

/** Stops reading the socket's TCP connection: the kernel's buffers fill, then the pod's. */
function stopReading(socket: TestSocket) {
  const transport = socket.io.engine.transport as unknown as { ws: { _socket: { pause(): void } } };
  transport.ws._socket.pause();
}

/** A room with a sender, a reader and a client that has stopped reading. */
async function roomWithStaller(pod: TestPod) {
  const owner = await makeUser('김철수');
  const { roomId } = await createRoom(pod.url, owner);
  const sender = await connect(pod.url, owner.token);
  const reader = await connect(pod.url, (await makeUser('이영희')).token);
  const staller = await connect(pod.url, (await makeUser('박민수')).token);
  for (const socket of [sender, reader, staller]) expect((await emitAck(socket, 'join-room', { roomId })).ok).toBe(true);
  const stallerId = staller.id!;
  stopReading(staller);
  return { roomId, sender, reader, onPod: () => pod.gateway.nsp.sockets.get(stallerId) };
}

/** `total` messages of 1,000 characters (~3 KB each), 50 unacknowledged at a time; returns how many were stored. */
async function flood(sender: TestSocket, roomId: string, total: number): Promise<number> {
  const content = '가'.repeat(1000);
  let stored = 0;
  const inFlight = new Set<Promise<void>>();
  for (let index = 0; index < total; index++) {
    const ack = emitAck(sender, 'send-message', { roomId, type: 'text', content }, 20_000).then((response) => {
      if (response.ok) stored++;
    });
    inFlight.add(ack);
    void ack.finally(() => inFlight.delete(ack));
    if (inFlight.size >= 50) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
  return stored;
}

async function until(condition: () => boolean, ms: number) {
  const deadline = Date.now() + ms;
  while (!condition() && Date.now() < deadline) await sleep(50);
}

describe('a client that stops reading its socket', () => {
  it('is dropped once the pod holds more than SOCKET_MAX_QUEUED_BYTES for it, and the room goes on', { timeout: 60_000 }, async ({ cluster }) => {
    const [pod] = cluster.pods;
    const { roomId, sender, reader, onPod } = await roomWithStaller(pod!);
    let received = 0;
    reader.on('new-message', () => received++);
    const dropped = async () => (await pod!.gateway.metrics.slowConsumersDropped.get()).values[0]?.value ?? 0;
    const droppedBefore = await dropped();

    // ~12 MB to its rooms: more than the kernel's buffers take (a few MB) and the pod's limit.
    const total = 4000;
    expect(await flood(sender, roomId, total)).toBe(total);
    await until(() => onPod() === undefined, 3000);
    expect(onPod()).toBeUndefined();
    expect(await dropped()).toBe(droppedBefore + 1);

    // Everyone else is unaffected: the reader got every message and is still connected.
    await until(() => received === total, 10_000);
    expect(received).toBe(total);
    expect(reader.connected).toBe(true);
  });
});

describe('a pod shutting down with a client that stops reading', () => {
  it('closes at once rather than wait for the client to read its backlog', { timeout: 60_000 }, async () => {
    // A limit the backlog stays under: only the shutdown can deal with this socket.
    const own = await startCluster(1, { MESSAGE_RATE_LIMIT_PER_MINUTE: '1000000', SOCKET_MAX_QUEUED_BYTES: String(1024 ** 3) });
    try {
      const [pod] = own.pods;
      const { roomId, sender, onPod } = await roomWithStaller(pod!);
      expect(await flood(sender, roomId, 3000)).toBe(3000);
      expect(onPod()).toBeDefined();

      const started = Date.now();
      await own.close();
      // Without dropping it, the close waits for ws's 30 s close timeout (or the heartbeat's 40 s).
      expect(Date.now() - started).toBeLessThan(5000);
    } finally {
      await own.close();
    }
  });
});
