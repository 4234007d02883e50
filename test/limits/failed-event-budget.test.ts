import { randomUUID } from 'node:crypto';
import { describe, expect } from 'vitest';
import { createRoom, emitAck, makeUser, nextEvent } from '@chat/testing';
import { clusterTest, roomLookups } from '../support/index.ts';

/**
 * Issue 18, point 5: a failed event is not free. 300 sends to made-up room ids used to cost
 * 300 database lookups and nothing else. Now "no such room" is remembered for a few seconds
 * (the same id is not looked up again), and every event answered with a lookup's refusal
 * (ROOM_NOT_FOUND, ROOM_EXPIRED, NOT_A_MEMBER, NOT_A_MEMBER_LEAVE) costs one of the user's
 * FAILED_EVENT_LIMIT_PER_MINUTE, shared by all pods; past it the user's events are refused with
 * TOO_MANY_REQUESTS before anything is looked up. The database lookups are counted by the pod's
 * chat_room_lookups_total.
 */

const BUDGET = 10;
const TOO_MANY = '요청이 너무 많습니다. 잠시 후 다시 시도해주세요';
const NOT_FOUND = { message: '방을 찾을 수 없습니다', code: 'ROOM_NOT_FOUND' };

const it = clusterTest({ pods: 2, env: { FAILED_EVENT_LIMIT_PER_MINUTE: String(BUDGET), MESSAGE_RATE_LIMIT_PER_MINUTE: '1000' } });

describe('failed events cost budget', () => {
  it('refuses the user past the budget of failed sends, before any lookup: 300 made-up rooms cost at most the budget in queries', async ({ cluster, connect }) => {
    const [a] = cluster.pods;
    const user = await makeUser('없는방');
    const socket = await connect(a!.url, user.token);
    const before = await roomLookups(a!.url);

    const answers = [];
    for (let i = 0; i < 300; i++) {
      answers.push(await emitAck(socket, 'send-message', { roomId: randomUUID(), type: 'text', content: 'hi' }));
    }
    expect(answers.slice(0, BUDGET)).toEqual(Array.from({ length: BUDGET }, () => ({ ok: false, error: NOT_FOUND })));
    for (const answer of answers.slice(BUDGET)) {
      expect(answer).toEqual({ ok: false, error: { message: TOO_MANY, code: 'TOO_MANY_REQUESTS', retryAfterMs: expect.any(Number) } });
    }
    expect(await roomLookups(a!.url)).toBe(before + BUDGET);

    // The refusal names the event, like every error, and says when to try again.
    const error = nextEvent(socket, 'error');
    const refused = await emitAck(socket, 'join-room', { roomId: randomUUID() });
    expect(refused.ok).toBe(false);
    expect(await error).toEqual({ message: TOO_MANY, code: 'TOO_MANY_REQUESTS', event: 'join-room', retryAfterMs: expect.any(Number) });
    if (!refused.ok) {
      expect(refused.error.retryAfterMs).toBeGreaterThan(0);
      expect(refused.error.retryAfterMs).toBeLessThanOrEqual(60_000);
    }
    expect(await roomLookups(a!.url)).toBe(before + BUDGET);
  });

  it('shares the budget across pods, and another user keeps theirs', async ({ cluster, connect }) => {
    const [a, b] = cluster.pods;
    const user = await makeUser('두파드');
    const onA = await connect(a!.url, user.token);
    const onB = await connect(b!.url, user.token);
    for (let i = 0; i < BUDGET; i++) {
      const ack = await emitAck(i % 2 ? onB : onA, 'join-room', { roomId: randomUUID() });
      expect(ack, `failure #${i + 1}`).toEqual({ ok: false, error: NOT_FOUND });
    }
    // The budget is spent: the next failure on either pod tips it, and from then on that pod
    // refuses the user's events without a lookup.
    for (const socket of [onA, onB]) {
      const answers = [await emitAck(socket, 'join-room', { roomId: randomUUID() }), await emitAck(socket, 'join-room', { roomId: randomUUID() })];
      expect(answers.at(-1)).toMatchObject({ ok: false, error: { code: 'TOO_MANY_REQUESTS' } });
    }

    const other = await makeUser('다른이');
    const room = await createRoom(a!.url, other);
    const otherSocket = await connect(b!.url, other.token);
    expect((await emitAck(otherSocket, 'join-room', { roomId: room.roomId })).ok).toBe(true);
    expect((await emitAck(otherSocket, 'send-message', { roomId: room.roomId, type: 'text', content: '괜찮아' })).ok).toBe(true);
  });

  it('remembers a missing room for a while: the same made-up id is looked up once', async ({ cluster, connect }) => {
    const [a] = cluster.pods;
    const missing = randomUUID();
    const before = await roomLookups(a!.url);
    // Two users, so neither budget runs out; four asks of one id.
    for (const nickname of ['첫째', '둘째']) {
      const socket = await connect(a!.url, (await makeUser(nickname)).token);
      expect(await emitAck(socket, 'send-message', { roomId: missing, type: 'text', content: 'x' })).toEqual({ ok: false, error: NOT_FOUND });
      expect(await emitAck(socket, 'join-room', { roomId: missing })).toEqual({ ok: false, error: NOT_FOUND });
    }
    expect(await roomLookups(a!.url)).toBe(before + 1);
  });

  it('refuses every event once the budget is spent, typing included (PROTOCOL §6: "any event")', async ({ cluster, connect }) => {
    const [a] = cluster.pods;
    const user = await makeUser('타자');
    const room = await createRoom(a!.url, user);
    const socket = await connect(a!.url, user.token);
    expect((await emitAck(socket, 'join-room', { roomId: room.roomId })).ok).toBe(true);
    expect(await emitAck(socket, 'typing', { roomId: room.roomId, isTyping: true })).toEqual({ ok: true, data: {} });
    for (let i = 0; i <= BUDGET; i++) await emitAck(socket, 'leave-room', { roomId: randomUUID() });
    const refused = { ok: false, error: { message: TOO_MANY, code: 'TOO_MANY_REQUESTS', retryAfterMs: expect.any(Number) } };
    expect(await emitAck(socket, 'typing', { roomId: room.roomId, isTyping: false })).toEqual(refused);
    expect(await emitAck(socket, 'send-message', { roomId: room.roomId, type: 'text', content: '막힘' })).toEqual(refused);
  });

  it('successful events cost nothing: a member sends well past the failure budget', async ({ cluster, connect }) => {
    const [a] = cluster.pods;
    const user = await makeUser('성실');
    const room = await createRoom(a!.url, user);
    const socket = await connect(a!.url, user.token);
    expect((await emitAck(socket, 'join-room', { roomId: room.roomId })).ok).toBe(true);
    for (let i = 0; i < BUDGET * 2; i++) {
      const ack = await emitAck(socket, 'send-message', { roomId: room.roomId, type: 'text', content: `#${i}` });
      expect(ack.ok, `send #${i + 1}`).toBe(true);
    }
  });
});
