import { describe, expect } from 'vitest';
import { createRoom, emitAck, makeUser, nextEvent, request } from '@chat/testing';
import { clusterTest } from '../support/index.ts';

const it = clusterTest({ pods: 2 });

describe('smoke', () => {
  it('sends across pods', async ({ cluster, connect }) => {
    const [a, b] = cluster.pods;
    const alice = await makeUser('김철수');
    const bob = await makeUser('이영희');
    const room = await createRoom(a!.url, alice);
    const sa = await connect(a!.url, alice.token);
    const sb = await connect(b!.url, bob.token);
    const joinA = await emitAck(sa, 'join-room', { roomId: room.roomId });
    expect(joinA).toEqual({ ok: true, data: { roomId: room.roomId, memberCount: 1, lastChangeSeq: expect.any(Number) } });
    const joinedSeen = nextEvent(sa, 'user-joined');
    await emitAck(sb, 'join-room', { roomId: room.roomId });
    expect(await joinedSeen).toMatchObject({ userId: bob.userId, nicknameMask: '이**', memberCount: 2 });
    const received = nextEvent(sb, 'new-message');
    const ack = await emitAck(sa, 'send-message', { roomId: room.roomId, type: 'text', content: '안녕하세요!' });
    expect(ack).toMatchObject({ ok: true, data: { seq: 1, content: '안녕하세요!', nicknameMask: '김**' } });
    expect(await received).toMatchObject({ seq: 1, content: '안녕하세요!' });
    const history = await request(b!.url, 'GET', `/api/rooms/${room.roomId}/messages`);
    expect(history.status).toBe(200);
    expect(history.body.messages[0]).toMatchObject({ content: '안녕하세요!', nickname: '김철수' });
  });
});

