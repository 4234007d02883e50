import { describe, expect } from 'vitest';
import { createRoom, emitAck, makeUser, nextEvent, request, sleep } from '@chat/testing';
import { clusterTest } from '../support/index.ts';

/**
 * Issue 20 §3: `room-occupied` / `room-vacated` — first member online / last member offline —
 * recorded in the room's change feed (so webhooks deliver them) a grace after the change, so a
 * quick reconnect does not flap.
 */
const GRACE_MS = 1500;
const it = clusterTest({ pods: 2, ownDatabase: true, env: { ROOM_OCCUPANCY_GRACE_MS: String(GRACE_MS) } });

const occupancyOf = async (url: string, roomId: string) =>
  ((await request(url, 'GET', `/api/rooms/${roomId}/changes`)).body.changes as { event: string; changeSeq: number }[]).filter(
    (change) => change.event === 'room-occupied' || change.event === 'room-vacated',
  );

describe('room occupancy [ext]', () => {
  it('occupied after a member comes online, not flapping on a quick reconnect, vacated after the last one leaves', async ({ cluster, connect, startWorker }) => {
    const [a, b] = cluster.pods;
    await startWorker();
    const owner = await makeUser('방장');
    const room = await createRoom(a!.url, owner);
    const watcher = await makeUser('관찰자');
    let socket = await connect(a!.url, owner.token);
    const occupied = nextEvent(socket, 'room-occupied', 10_000);
    expect((await emitAck(socket, 'join-room', { roomId: room.roomId })).ok).toBe(true);
    expect(await occupied).toEqual({ roomId: room.roomId, changeSeq: 2 });

    // Away and back (on the other pod) within the grace: nothing changes.
    socket.close();
    await sleep(200);
    socket = await connect(b!.url, owner.token);
    await sleep(GRACE_MS + 1500);
    expect((await occupancyOf(a!.url, room.roomId)).map((change) => change.event)).toEqual(['room-occupied']);

    // A second member joins; then both go: vacated once, after the grace.
    const watcherSocket = await connect(b!.url, watcher.token);
    await emitAck(watcherSocket, 'join-room', { roomId: room.roomId });
    socket.close();
    watcherSocket.close();
    const deadline = Date.now() + 10_000;
    let events: string[] = [];
    while (Date.now() < deadline) {
      events = (await occupancyOf(a!.url, room.roomId)).map((change) => change.event);
      if (events.length >= 2) break;
      await sleep(200);
    }
    expect(events).toEqual(['room-occupied', 'room-vacated']);
  });
});
