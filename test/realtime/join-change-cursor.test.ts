import { describe, expect } from 'vitest';
import { createRoom, emitAck, makeUser, nextEvent, request } from '@chat/testing';
import { clusterTest } from '../support/index.ts';

/**
 * PROTOCOL §2 [ext]: `room-joined` carries `lastChangeSeq`, where the room's change feed stood
 * at the join, so a client that joins knows its cursor without reading history: the change after
 * it is the next one it hears, and a catch-up from it returns exactly what it missed.
 */

const it = clusterTest({ pods: 2 });

type Joined = { roomId: string; memberCount: number; lastChangeSeq: number };
type Changes = { changes: { changeSeq: number; event: string }[]; hasMore: boolean };

describe('room-joined lastChangeSeq [ext]', () => {
  it('is the join’s own user-joined number, then the latest change for a second device, and a cursor that misses nothing', async ({ cluster, connect }) => {
    const [a, b] = cluster.pods;
    const owner = await makeUser('방장');
    const { roomId } = await createRoom(a!.url, owner);
    const ownerSocket = await connect(a!.url, owner.token);
    const ownerJoin = await emitAck<Joined>(ownerSocket, 'join-room', { roomId });
    expect(ownerJoin.ok).toBe(true);

    // A new member: the cursor is the number of its own user-joined, as the others hear it.
    const user = await makeUser('참가자');
    const phone = await connect(b!.url, user.token);
    const announced = nextEvent(ownerSocket, 'user-joined');
    const joined = await emitAck<Joined>(phone, 'join-room', { roomId });
    expect(joined.ok).toBe(true);
    const cursor = joined.ok ? joined.data.lastChangeSeq : -1;
    expect(cursor).toBe((await announced).changeSeq);
    const feed = await request<Changes>(a!.url, 'GET', `/api/rooms/${roomId}/changes?after=0`, { token: user.token });
    expect(feed.body.changes.at(-1)).toMatchObject({ changeSeq: cursor, event: 'user-joined' });

    // Changes made after the join are numbered after the cursor, the next one cursor + 1.
    const heard = nextEvent(phone, 'new-message');
    const sent = await emitAck<{ changeSeq: number }>(ownerSocket, 'send-message', { roomId, type: 'text', content: '다음' });
    expect(sent.ok && sent.data.changeSeq).toBe(cursor + 1);
    expect((await heard).changeSeq).toBe(cursor + 1);
    const missed = await request<Changes>(b!.url, 'GET', `/api/rooms/${roomId}/changes?after=${cursor}`, { token: user.token });
    expect(missed.body.changes.map((change) => change.changeSeq)).toEqual([cursor + 1]);

    // A second device of a member (nothing written) and a repeat join (nothing read but the
    // room): both are told the latest change, the message just sent.
    const laptop = await connect(a!.url, user.token);
    const repeat = await emitAck<Joined>(laptop, 'join-room', { roomId });
    expect(repeat).toEqual({ ok: true, data: { roomId, memberCount: 2, lastChangeSeq: cursor + 1 } });
    const again = await emitAck<Joined>(phone, 'join-room', { roomId });
    expect(again).toEqual({ ok: true, data: { roomId, memberCount: 2, lastChangeSeq: cursor + 1 } });
  });
});
