import { describe, expect } from 'vitest';
import { createRoom, emitAck, makeUser } from '@chat/testing';
import { clusterTest, roomLookups } from '../support/index.ts';

/**
 * A socket's handshake reads its user's live rooms anyway (to put the socket into them); the pod
 * keeps what it read in its room cache, so the socket's first event in each room asks the
 * database nothing. Without it a pod that starts, or takes over a dead pod's clients, looked up
 * every busy room once more (bench:probe at 2,000 rooms: ~2,000 lookups per pod in the first
 * seconds of sends).
 */
const it = clusterTest({ pods: 2 });

describe('the handshake fills the room cache', () => {
  it("a member's first send on a pod that never saw the room makes no lookup there", async ({ cluster, connect }) => {
    const [a, b] = cluster.pods;
    const owner = await makeUser('방장');
    const member = await makeUser('손님');
    const room = await createRoom(a!.url, owner);
    const onA = await connect(a!.url, member.token);
    expect((await emitAck(onA, 'join-room', { roomId: room.roomId })).ok).toBe(true);

    const before = await roomLookups(b!.url);
    const onB = await connect(b!.url, member.token);
    const sent = await emitAck(onB, 'send-message', { roomId: room.roomId, type: 'text', content: '안녕' });
    expect(sent.ok).toBe(true);
    expect(await roomLookups(b!.url)).toBe(before);
  });
});
