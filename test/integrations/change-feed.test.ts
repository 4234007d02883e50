import { describe, expect } from 'vitest';
import { createRoomExpiryRepository } from '@chat/db';
import type { NewMessagePayload } from '@chat/protocol';
import { createRoom, emitAck, makeUser, nextEvent, request, sleep, spawnGateway } from '@chat/testing';
import { clusterTest } from '../support/index.ts';

/**
 * Issue 20 §1 [ext] PROTOCOL §16: every change of a room — message stored, deleted, member
 * joined, left, room expiring, expired — gets a per-room gap-free `changeSeq` in the
 * transaction of the change; live events carry it; `GET …/changes?after=` returns the feed.
 */
const it = clusterTest({ pods: 2, env: { MESSAGE_RATE_LIMIT_PER_MINUTE: '100000', MEMBERSHIP_RATE_LIMIT_PER_MINUTE: '100000' } });

/** The whole feed after `after`, page by page; as a guest unless `token` is given. */
async function readFeed(url: string, roomId: string, after = 0, limit = 100, token?: string) {
  const all: { changeSeq: number; event: string; payload: Record<string, unknown> }[] = [];
  let cursor = after;
  for (let page = 0; page < 100; page++) {
    const result = await request(url, 'GET', `/api/rooms/${roomId}/changes?after=${cursor}&limit=${limit}`, { token });
    expect(result.status).toBe(200);
    all.push(...result.body.changes);
    if (!result.body.hasMore) break;
    cursor = result.body.changes.at(-1).changeSeq;
  }
  return all;
}

describe('change feed [ext]', () => {
  it('numbers every change gap-free and serves it oldest first, live events carrying the number', async ({ cluster, connect }) => {
    const [a, b] = cluster.pods;
    const owner = await makeUser('방장');
    const guest = await makeUser('손님');
    const room = await createRoom(a!.url, owner);
    const ownerSocket = await connect(a!.url, owner.token);
    const guestSocket = await connect(b!.url, guest.token);
    expect((await emitAck(ownerSocket, 'join-room', { roomId: room.roomId })).ok).toBe(true);
    const joined = nextEvent(ownerSocket, 'user-joined');
    expect((await emitAck(guestSocket, 'join-room', { roomId: room.roomId })).ok).toBe(true);
    expect((await joined).changeSeq).toBe(2);

    // Sends from both pods at once: several group commits, interleaved.
    const sends = await Promise.all(
      Array.from({ length: 30 }, (_, index) =>
        emitAck<NewMessagePayload>(index % 2 ? guestSocket : ownerSocket, 'send-message', {
          roomId: room.roomId,
          type: 'text',
          content: `메시지 ${index}`,
        }),
      ),
    );
    const stored = sends.map((ack) => (ack.ok ? ack.data : null));
    expect(stored.every((message) => message !== null && message.changeSeq > 2)).toBe(true);

    const deleted = nextEvent(guestSocket, 'message-deleted');
    const victim = stored[0]!;
    expect((await request(a!.url, 'DELETE', `/api/messages/${victim.messageId}`, { token: owner.token })).status).toBe(200);
    const deletedEvent = await deleted;
    expect(deletedEvent.changeSeq).toBe(33);

    const left = nextEvent(ownerSocket, 'user-left');
    expect((await emitAck(guestSocket, 'leave-room', { roomId: room.roomId })).ok).toBe(true);
    expect((await left).changeSeq).toBe(34);

    // Read by a member: joins and leaves name who (non-members: the next test).
    const feed = await readFeed(b!.url, room.roomId, 0, 7, owner.token);
    expect(feed.map((change) => change.changeSeq)).toEqual(Array.from({ length: 34 }, (_, i) => i + 1));
    expect(feed[0]).toMatchObject({ event: 'user-joined', payload: { userId: owner.userId, memberCount: 1, changeSeq: 1 } });
    expect(feed[1]).toMatchObject({ event: 'user-joined', payload: { userId: guest.userId, nicknameMask: '손*', memberCount: 2 } });
    expect(feed.at(-2)).toMatchObject({ event: 'message-deleted', payload: { messageId: victim.messageId } });
    expect(feed.at(-1)).toMatchObject({ event: 'user-left', payload: { userId: guest.userId, memberCount: 1 } });
    // Messages in the feed in their seq order, each as its live event said, a deleted one without content.
    const messages = feed.filter((change) => change.event === 'new-message');
    expect(messages.map((change) => change.payload.seq)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    for (const change of messages) {
      const live = stored.find((message) => message!.messageId === change.payload.messageId)!;
      expect(change.changeSeq).toBe(live.changeSeq);
      if (live.messageId === victim.messageId) expect(change.payload.content).toBeNull();
      else expect(change.payload).toEqual({ ...live });
    }

    // `after` resumes exactly.
    expect((await readFeed(a!.url, room.roomId, 32)).map((change) => change.event)).toEqual(['message-deleted', 'user-left']);
  });

  it('names who joined and left only to the room\'s members; guests and other users get the count and the number', async ({ cluster, connect }) => {
    const [a, b] = cluster.pods;
    const owner = await makeUser('방장');
    const member = await makeUser('회원');
    const stranger = await makeUser('남남');
    const room = await createRoom(a!.url, owner);
    const ownerSocket = await connect(a!.url, owner.token);
    const memberSocket = await connect(b!.url, member.token);
    expect((await emitAck(ownerSocket, 'join-room', { roomId: room.roomId })).ok).toBe(true);
    expect((await emitAck(memberSocket, 'join-room', { roomId: room.roomId })).ok).toBe(true);
    expect((await emitAck(memberSocket, 'send-message', { roomId: room.roomId, type: 'text', content: '안녕' })).ok).toBe(true);
    expect((await emitAck(memberSocket, 'leave-room', { roomId: room.roomId })).ok).toBe(true);
    const { roomId } = room;

    // A member: every payload whole. Pages of 2, so one page holds no membership change.
    const whole = await readFeed(b!.url, roomId, 0, 2, owner.token);
    expect(whole.map((change) => change.payload)).toEqual([
      { roomId, userId: owner.userId, nicknameMask: '방*', memberCount: 1, changeSeq: 1 },
      { roomId, userId: member.userId, nicknameMask: '회*', memberCount: 2, changeSeq: 2 },
      expect.objectContaining({ userId: member.userId, content: '안녕', changeSeq: 3 }),
      { roomId, userId: member.userId, memberCount: 1, changeSeq: 4 },
    ]);

    // A guest, a user who never joined and one who left: the same changes, same numbers,
    // without who; messages as history shows them to anyone.
    for (const token of [undefined, stranger.token, member.token]) {
      const feed = await readFeed(a!.url, roomId, 0, 2, token);
      expect(feed.map((change) => [change.changeSeq, change.event])).toEqual(whole.map((change) => [change.changeSeq, change.event]));
      expect(feed.map((change) => change.payload)).toEqual([
        { roomId, memberCount: 1, changeSeq: 1 },
        { roomId, memberCount: 2, changeSeq: 2 },
        whole[2]!.payload,
        { roomId, memberCount: 1, changeSeq: 4 },
      ]);
    }
  });

  it('an offline client removes a message deleted while it was away after one catch-up', async ({ cluster, connect }) => {
    const [a, b] = cluster.pods;
    const author = await makeUser('작성자');
    const reader = await makeUser('독자');
    const room = await createRoom(a!.url, author);
    const authorSocket = await connect(a!.url, author.token);
    await emitAck(authorSocket, 'join-room', { roomId: room.roomId });
    let readerSocket = await connect(b!.url, reader.token);
    await emitAck(readerSocket, 'join-room', { roomId: room.roomId });

    // The reader's view, built only from what it receives.
    const shown = new Map<string, string | null>();
    let lastChangeSeq = 0;
    const follow = (socket: typeof readerSocket) => {
      socket.on('new-message', (message) => {
        shown.set(message.messageId, message.content);
        lastChangeSeq = Math.max(lastChangeSeq, message.changeSeq);
      });
      socket.on('message-deleted', (event) => {
        shown.delete(event.messageId);
        lastChangeSeq = Math.max(lastChangeSeq, event.changeSeq);
      });
    };
    follow(readerSocket);
    const heard = nextEvent(readerSocket, 'new-message');
    const sent = await emitAck<NewMessagePayload>(authorSocket, 'send-message', { roomId: room.roomId, type: 'text', content: '곧 지울 메시지' });
    expect(sent.ok).toBe(true);
    await heard;
    expect(shown.size).toBe(1);

    // Offline while the message is deleted (and another one sent).
    readerSocket.close();
    const messageId = sent.ok ? sent.data.messageId : '';
    expect((await request(a!.url, 'DELETE', `/api/messages/${messageId}`, { token: author.token })).status).toBe(200);
    await emitAck(authorSocket, 'send-message', { roomId: room.roomId, type: 'text', content: '새 메시지' });
    await sleep(100);
    expect(shown.has(messageId)).toBe(true);

    // Back: one catch-up from the last changeSeq it saw.
    readerSocket = await connect(b!.url, reader.token);
    follow(readerSocket);
    const catchUp = await request(b!.url, 'GET', `/api/rooms/${room.roomId}/changes?after=${lastChangeSeq}`);
    expect(catchUp.body.hasMore).toBe(false);
    for (const change of catchUp.body.changes) {
      if (change.event === 'new-message') shown.set(change.payload.messageId, change.payload.content);
      if (change.event === 'message-deleted') shown.delete(change.payload.messageId);
    }
    expect([...shown.values()]).toEqual(['새 메시지']);
  });

  it('serves an expired room\'s last changes, room-expired included, until its messages are dropped', async ({ cluster, sql, connect }) => {
    const [a, b] = cluster.pods;
    const owner = await makeUser('만료');
    const room = await createRoom(a!.url, owner, { ttlSeconds: 2 });
    const socket = await connect(a!.url, owner.token);
    await emitAck(socket, 'join-room', { roomId: room.roomId });
    const sent = await emitAck<NewMessagePayload>(socket, 'send-message', { roomId: room.roomId, type: 'text', content: '마지막 말' });
    expect(sent.ok).toBe(true);
    await sleep(Math.max(0, Date.parse(room.expiresAt) - Date.now() + 50));
    // What the worker's sweep does to an expired room: room-expired into the feed, members out.
    const expiry = createRoomExpiryRepository(sql);
    expect(await expiry.recordExpired(room.roomId, 30_000)).toEqual({ changeSeq: 3, next: 'announce' });
    await expiry.markAnnounced(room.roomId);
    await expiry.purgeMembers(room.roomId, 100);
    expect(await expiry.markExpired(room.roomId)).toBe(true);

    // A client that was offline through all of it: history is gone, the feed is whole.
    expect((await request(b!.url, 'GET', `/api/rooms/${room.roomId}/messages`)).status).toBe(410);
    const feed = await readFeed(b!.url, room.roomId, 0, 2);
    expect(feed.map((change) => change.event)).toEqual(['user-joined', 'new-message', 'room-expired']);
    expect(feed[1]!.payload).toMatchObject({ content: '마지막 말', changeSeq: 2 });

    // The expiry day's messages dropped (docs/partitions.md): a page with a hole is refused...
    await sql`delete from messages where room_id = ${room.roomId}`;
    for (const after of [0, 1]) {
      const refused = await request(b!.url, 'GET', `/api/rooms/${room.roomId}/changes?after=${after}`);
      expect(refused.status).toBe(410);
      expect(refused.body.code).toBe('ROOM_EXPIRED');
    }
    // ...while what is still stored after the cursor is whole and served.
    expect((await readFeed(b!.url, room.roomId, 2)).map((change) => change.event)).toEqual(['room-expired']);
  });

  it('refuses a page with holes even where the pod still holds the room as live (its news of a close lost)', async ({ cluster, sql, connect }) => {
    const [a] = cluster.pods;
    const owner = await makeUser('닫힘');
    const room = await createRoom(a!.url, owner);
    const socket = await connect(a!.url, owner.token);
    await emitAck(socket, 'join-room', { roomId: room.roomId });
    expect((await emitAck(socket, 'send-message', { roomId: room.roomId, type: 'text', content: '하나' })).ok).toBe(true);
    // The pod has the room cached, live.
    expect((await readFeed(a!.url, room.roomId)).map((change) => change.event)).toEqual(['user-joined', 'new-message']);
    // Closed elsewhere, and its day since dropped, with no word to this pod (a lost
    // `room-lifetime` notice): only the database knows.
    await sql`update rooms set expires_at = now() - interval '1 second' where id = ${room.roomId}`;
    await sql`delete from messages where room_id = ${room.roomId}`;
    const refused = await request(a!.url, 'GET', `/api/rooms/${room.roomId}/changes?after=0`);
    expect(refused.status, JSON.stringify(refused.body)).toBe(410);
    expect(refused.body.code).toBe('ROOM_EXPIRED');
  });

  it('answers like history: 404 for no room, 400 for a bad cursor or limit', async ({ url }) => {
    const owner = await makeUser();
    const room = await createRoom(url, owner);
    expect((await request(url, 'GET', `/api/rooms/00000000-0000-4000-8000-000000000000/changes`)).status).toBe(404);
    expect((await request(url, 'GET', `/api/rooms/${room.roomId}/changes?after=-1`)).body.code).toBe('INVALID_REQUEST');
    for (const limit of ['101', '9999999999', '99999999999999999999']) {
      expect((await request(url, 'GET', `/api/rooms/${room.roomId}/changes?limit=${limit}`)).body.code, limit).toBe('LIMIT_TOO_LARGE');
    }
    expect((await request(url, 'GET', `/api/rooms/${room.roomId}/changes?limit=0`)).body.code).toBe('INVALID_LIMIT');
    expect((await request(url, 'GET', `/api/rooms/${room.roomId}/changes`)).body).toEqual({ changes: [], hasMore: false });
  });

  it('stays gap-free when a pod is SIGKILLed mid-stream: retries land once, numbers never skip', async ({ cluster, sql, connect }) => {
    const [a] = cluster.pods;
    const doomed = await spawnGateway(cluster, { MESSAGE_RATE_LIMIT_PER_MINUTE: '100000', MEMBERSHIP_RATE_LIMIT_PER_MINUTE: '100000' });
    const steady = await makeUser('꾸준');
    const victim = await makeUser('희생');
    const room = await createRoom(a!.url, steady);
    const onA = await connect(a!.url, steady.token);
    const onDoomed = await connect(doomed.url, victim.token);
    await emitAck(onA, 'join-room', { roomId: room.roomId });
    await emitAck(onDoomed, 'join-room', { roomId: room.roomId });

    const COUNT = 40;
    const send = (socket: typeof onA, id: string, timeoutMs = 5000) =>
      emitAck<NewMessagePayload>(socket, 'send-message', { roomId: room.roomId, type: 'text', content: id, clientMessageId: id }, timeoutMs).catch(
        () => null,
      );
    const acked = new Set<string>();
    const fromDoomed = Array.from({ length: COUNT }, (_, index) => `victim-${index}`);
    const fromSteady = Array.from({ length: COUNT }, (_, index) => `steady-${index}`);
    const doomedSends = fromDoomed.map((id) => send(onDoomed, id, 3000).then((ack) => ack?.ok && acked.add(id)));
    const steadySends = fromSteady.map(async (id, index) => {
      await sleep(index * 5);
      const ack = await send(onA, id);
      if (ack?.ok) acked.add(id);
    });
    // Kill it while its sends are in flight.
    const deadline = Date.now() + 10_000;
    while ([...acked].filter((id) => id.startsWith('victim')).length < 5 && Date.now() < deadline) await sleep(5);
    await doomed.kill('SIGKILL');
    await Promise.all([...doomedSends, ...steadySends]);

    // The victim retries whatever it did not hear back about, on the surviving pod.
    const again = await connect(a!.url, victim.token);
    for (const id of [...fromDoomed, ...fromSteady]) {
      if (acked.has(id)) continue;
      const retried = await send(id.startsWith('victim') ? again : onA, id);
      expect(retried?.ok, id).toBe(true);
    }

    const feed = await readFeed(a!.url, room.roomId);
    const numbers = feed.map((change) => change.changeSeq);
    const [stored] = await sql<{ last_change_seq: number }[]>`select last_change_seq::int from rooms where id = ${room.roomId}`;
    expect(numbers).toEqual(Array.from({ length: stored!.last_change_seq }, (_, i) => i + 1));
    const contents = feed.filter((change) => change.event === 'new-message').map((change) => change.payload.content);
    expect(contents.sort()).toEqual([...fromDoomed, ...fromSteady].sort());
    const seqs = feed.filter((change) => change.event === 'new-message').map((change) => change.payload.seq);
    expect(seqs).toEqual(Array.from({ length: 2 * COUNT }, (_, i) => i + 1));
  }, 90_000);
});
