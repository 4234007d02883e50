import { describe, expect } from 'vitest';
import { connect, createRoom, emitAck, makeUser, request } from '@chat/testing';
import { clusterTest, type TestCluster } from '../support/index.ts';

/**
 * Issue 3, bookkeeping: `messageCount` (the room's last seq; deleted messages keep their number)
 * and `lastMessageAt`, advanced in the message transaction itself, shown by GET /api/rooms and
 * GET /api/rooms/:roomId on every pod. A database of this file's own keeps the listing ours.
 */

const it = clusterTest({ pods: 2, ownDatabase: true });
let cluster: TestCluster;

it.beforeAll(({ cluster: started }) => {
  cluster = started;
});

type RoomView = { roomId: string; messageCount: number; lastMessageAt: string | null; memberCount: number };

async function views(roomId: string): Promise<RoomView[]> {
  const out: RoomView[] = [];
  for (const pod of cluster.pods) {
    const one = await request<RoomView>(pod.url, 'GET', `/api/rooms/${roomId}`);
    expect(one.status).toBe(200);
    const list = await request<{ rooms: RoomView[] }>(pod.url, 'GET', '/api/rooms?limit=100');
    expect(list.status).toBe(200);
    const listed = list.body.rooms.find((room) => room.roomId === roomId);
    expect(listed, 'the room is in GET /api/rooms').toBeDefined();
    expect(listed).toEqual(one.body);
    out.push(one.body);
  }
  return out;
}

describe('room bookkeeping', () => {
  it('messageCount and lastMessageAt follow the sends, on both pods and in the listing', async () => {
    const [a, b] = cluster.pods;
    const alice = await makeUser('김철수');
    const bob = await makeUser('이영희');
    const room = await createRoom(a!.url, alice);
    const other = await createRoom(a!.url, alice, { name: '조용한 방' });
    for (const view of await views(room.roomId)) {
      expect(view).toMatchObject({ messageCount: 0, lastMessageAt: null, memberCount: 0 });
    }

    const sa = await connect(a!.url, alice.token);
    const sb = await connect(b!.url, bob.token);
    for (const socket of [sa, sb]) expect(await emitAck(socket, 'join-room', { roomId: room.roomId })).toMatchObject({ ok: true });

    const before = Date.now();
    const first = await emitAck<{ messageId: string; createdAt: string }>(sa, 'send-message', {
      roomId: room.roomId,
      type: 'text',
      content: '하나',
    });
    if (!first.ok) throw new Error(JSON.stringify(first));
    let last = '';
    for (const [socket, body] of [
      [sb, { type: 'emoji', content: '👍' }],
      [sa, { type: 'image', imageUrl: 'https://example.com/a.png' }],
    ] as const) {
      const ack = await emitAck<{ createdAt: string }>(socket, 'send-message', { roomId: room.roomId, ...body });
      if (!ack.ok) throw new Error(JSON.stringify(ack));
      last = ack.data.createdAt;
    }
    const after = Date.now();

    const seen = await views(room.roomId);
    for (const view of seen) {
      expect(view.messageCount).toBe(3);
      expect(view.memberCount).toBe(2);
      const at = Date.parse(view.lastMessageAt ?? '');
      // The commit time of the last batch: after the first send began, not after the last ack.
      expect(at).toBeGreaterThanOrEqual(before - 1000);
      expect(at).toBeLessThanOrEqual(after + 1000);
      expect(view.lastMessageAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    }
    expect(Math.abs(Date.parse(seen[0]!.lastMessageAt!) - Date.parse(last))).toBeLessThan(2000);
    // The room nobody wrote in is untouched.
    expect((await views(other.roomId))[0]).toMatchObject({ messageCount: 0, lastMessageAt: null });

    // A deleted message keeps its number: the count does not go down, and nothing else moves.
    expect((await request(a!.url, 'DELETE', `/api/messages/${first.data.messageId}`, { token: alice.token })).status).toBe(200);
    const afterDelete = await views(room.roomId);
    expect(afterDelete.map((view) => view.messageCount)).toEqual([3, 3]);
    expect(afterDelete[0]!.lastMessageAt).toBe(seen[0]!.lastMessageAt);

    // A refused send (blank) and an idempotent retry store nothing: the count stays.
    expect(await emitAck(sa, 'send-message', { roomId: room.roomId, type: 'text', content: '   ' })).toMatchObject({ ok: false });
    const retry = { roomId: room.roomId, type: 'text', content: '다시', clientMessageId: 'bk-1' };
    expect(await emitAck(sa, 'send-message', retry)).toMatchObject({ ok: true, data: { seq: 4 } });
    expect(await emitAck(sa, 'send-message', retry)).toMatchObject({ ok: true, data: { seq: 4 } });
    expect((await views(room.roomId)).map((view) => view.messageCount)).toEqual([4, 4]);
  });
});
