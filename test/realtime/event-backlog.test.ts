import { describe, expect } from 'vitest';
import type { AckResponse, NewMessagePayload } from '@chat/protocol';
import { createRoom, emitAck, makeUser } from '@chat/testing';
import { clusterTest } from '../support/index.ts';

/**
 * A socket's events run at most a few at a time; the rest wait in order, and past a backlog
 * the pod stops reading the connection for a while (realtime/event-slots.ts). All of them are
 * still answered, as the protocol says.
 */

const it = clusterTest({ pods: 1, env: { MESSAGE_RATE_LIMIT_PER_MINUTE: '1000000' } });

describe('a socket that sends without waiting for answers', () => {
  it('gets every answer, and its messages are stored in the order it sent them', { timeout: 60_000 }, async ({ url, connect }) => {
    const user = await makeUser('김철수');
    const { roomId } = await createRoom(url, user);
    const socket = await connect(url, user.token);
    expect((await emitAck(socket, 'join-room', { roomId })).ok).toBe(true);

    // Far past the backlog: the pod pauses and resumes reading this connection several times.
    const total = 400;
    const acks = await Promise.all(
      Array.from({ length: total }, (_, index) =>
        index % 4 === 3
          ? emitAck(socket, 'send-message', { roomId, type: 'text', content: '' }, 30_000)
          : emitAck<NewMessagePayload>(socket, 'send-message', { roomId, type: 'text', content: `#${index}` }, 30_000),
      ),
    );
    const stored = acks.filter((ack): ack is AckResponse<NewMessagePayload> & { ok: true } => ack.ok);
    expect(stored).toHaveLength(300);
    expect(acks.filter((ack) => !ack.ok).every((ack) => !ack.ok && ack.error.code === 'CONTENT_REQUIRED')).toBe(true);
    const bySeq = [...stored].sort((a, b) => a.data.seq - b.data.seq).map((ack) => ack.data.content);
    expect(bySeq).toEqual(stored.map((ack) => ack.data.content));
    expect(socket.connected).toBe(true);
  });
});
