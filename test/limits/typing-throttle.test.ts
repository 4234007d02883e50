import { describe, expect } from 'vitest';
import { connect, createRoom, emitAck, makeUser, nextEvent, record, sleep, type TestSocket, type TestUser } from '@chat/testing';
import { clusterTest } from '../support/index.ts';

/**
 * PROTOCOL §15: `typing` is throttled per user per room (per pod), not per socket: a user may
 * hold MAX_SOCKETS_PER_USER sockets, and with a budget per socket one user sent every member
 * of a room 32 times the budget. The budget: a burst of 4, then 2 a second
 * (apps/gateway/src/realtime/typing-throttle.ts); the `false` that ends a `true` always passes.
 */

const it = clusterTest({ pods: 1 });
let url: string;
it.beforeAll(({ url: first }) => {
  url = first;
});

const BURST = 4;
const PER_SECOND = 2;
const QUIET_MS = 250;

async function join(socket: TestSocket, roomId: string) {
  const ack = await emitAck(socket, 'join-room', { roomId });
  if (!ack.ok) throw new Error(`join failed: ${JSON.stringify(ack)}`);
}

/** A room with `typist` on `devices` sockets and one listener, everyone in it. */
async function scene(devices: number) {
  const typist = await makeUser('김철수');
  const listener = await makeUser('이영희');
  const room = await createRoom(url, typist);
  const sockets: TestSocket[] = [];
  for (let i = 0; i < devices; i++) sockets.push(await connect(url, typist.token));
  const listening = await connect(url, listener.token);
  for (const socket of [...sockets, listening]) await join(socket, room.roomId);
  return { typist, listener, roomId: room.roomId, sockets, listening };
}

const indicator = (user: TestUser, roomId: string, isTyping: boolean) => ({ roomId, userId: user.userId, nicknameMask: '김**', isTyping });

/**
 * Each socket sends `typing` as fast as its acknowledgements come back (8 in flight, the most a
 * socket has handled at once), alternating `true` and `false`, for `ms`; each socket's last
 * word is `false`. Returns how long the flood lasted.
 */
async function flood(sockets: TestSocket[], roomId: string, ms: number): Promise<number> {
  const started = Date.now();
  await Promise.all(
    sockets.map(async (socket) => {
      let n = 0;
      while (Date.now() - started < ms) {
        await Promise.all(Array.from({ length: 8 }, () => emitAck(socket, 'typing', { roomId, isTyping: n++ % 2 === 0 })));
      }
      await emitAck(socket, 'typing', { roomId, isTyping: false });
    }),
  );
  return Date.now() - started;
}

describe('typing budget per user per room', () => {
  it("one user's sockets share one budget: a listener gets at most the user's budget, not one per socket", async () => {
    const { typist, roomId, sockets, listening } = await scene(4);
    const seen = record(listening, 'typing-indicator');
    const tookMs = await flood(sockets, roomId, 1500);
    await sleep(QUIET_MS);
    // The burst, the rate over the flood, and the one `false` in debt that may end the last `true`.
    const budget = BURST + Math.ceil((PER_SECOND * tookMs) / 1000) + 1;
    expect(seen.length, `${seen.length} indicators in ${tookMs} ms`).toBeLessThanOrEqual(budget);
    expect(seen.length).toBeGreaterThanOrEqual(BURST);
    // Nothing is left on the listener's screen: the user's last word was `false`.
    expect(seen.at(-1)).toEqual(indicator(typist, roomId, false));
    expect(seen.every((event) => event.userId === typist.userId && event.roomId === roomId)).toBe(true);
  });

  it("the flood spends nobody else's budget: another user in the room, and the same user in another room, get through", async () => {
    const { typist, roomId, sockets, listening } = await scene(2);
    const other = await makeUser('박지민');
    const otherSocket = await connect(url, other.token);
    await join(otherSocket, roomId);
    const otherRoom = (await createRoom(url, typist)).roomId;
    await join(sockets[0]!, otherRoom);
    await join(listening, otherRoom);

    await flood(sockets, roomId, 500);
    const seen = record(listening, 'typing-indicator');
    expect(await emitAck(otherSocket, 'typing', { roomId, isTyping: true })).toEqual({ ok: true, data: {} });
    expect(await emitAck(sockets[1]!, 'typing', { roomId: otherRoom, isTyping: true })).toEqual({ ok: true, data: {} });
    await sleep(QUIET_MS);
    expect(seen).toEqual([
      { roomId, userId: other.userId, nicknameMask: '박**', isTyping: true },
      indicator(typist, otherRoom, true),
    ]);
  });

  it("a single socket's ordinary typing gets through whole", async () => {
    const { typist, roomId, sockets, listening } = await scene(1);
    const [socket] = sockets as [TestSocket];
    const seen = record(listening, 'typing-indicator');
    // Typing, a pause, typing again, sent: what the web page sends (PROTOCOL §5), a little faster.
    for (const isTyping of [true, false, true, false]) {
      await emitAck(socket, 'typing', { roomId, isTyping });
      await sleep(300);
    }
    expect(seen).toEqual([true, false, true, false].map((isTyping) => indicator(typist, roomId, isTyping)));
  });

  it('the budget refills: a second after a flood the same user is heard again', async () => {
    const { typist, roomId, sockets, listening } = await scene(3);
    await flood(sockets, roomId, 500);
    // At worst the flood left the budget one in debt (its last `false`): a token back in 1 s.
    await sleep(1000 / PER_SECOND + 1000 / PER_SECOND + 100);
    const next = nextEvent(listening, 'typing-indicator');
    await emitAck(sockets[2]!, 'typing', { roomId, isTyping: true });
    expect(await next).toEqual(indicator(typist, roomId, true));
  });

  it('the `false` that ends a `true` passes with the budget spent: from another device, and by a disconnect', async () => {
    const { typist, roomId, sockets, listening } = await scene(3);
    const [first, second, third] = sockets as [TestSocket, TestSocket, TestSocket];
    const seen = record(listening, 'typing-indicator');
    // Two devices spend the budget on `true`s at once; the third, which never said `true`, ends it.
    const trues = (socket: TestSocket) => Array.from({ length: BURST * 2 }, () => emitAck(socket, 'typing', { roomId, isTyping: true }));
    await Promise.all([...trues(first), ...trues(second)]);
    expect(await emitAck(third, 'typing', { roomId, isTyping: false })).toEqual({ ok: true, data: {} });
    await sleep(QUIET_MS);
    expect(seen.length).toBeLessThanOrEqual(BURST + 2);
    expect(seen.at(-1)).toEqual(indicator(typist, roomId, false));
  });

  it('a device that goes away while typing ends its "typing…" with the budget spent', async () => {
    const { typist, roomId, sockets, listening } = await scene(2);
    const [first, second] = sockets as [TestSocket, TestSocket];
    const seen = record(listening, 'typing-indicator');
    const trues = (socket: TestSocket) => Array.from({ length: BURST * 2 }, () => emitAck(socket, 'typing', { roomId, isTyping: true }));
    await Promise.all([...trues(first), ...trues(second)]);
    await sleep(QUIET_MS);
    expect(seen.length).toBeLessThanOrEqual(BURST + 1);
    expect(seen.at(-1)).toEqual(indicator(typist, roomId, true));
    const ended = nextEvent(listening, 'typing-indicator');
    first.close();
    expect(await ended).toEqual(indicator(typist, roomId, false));
  });
});
