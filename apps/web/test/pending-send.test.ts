import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { AckResponse, ErrorCode } from '@chat/protocol';
import { nextStep, SEND_ATTEMPTS, SendQueue, type AttemptResult, type QueuedSend } from '../client/pending-send.ts';

type Stored = { messageId: string };

const hello: QueuedSend = { roomId: 'r1', message: { type: 'text', content: '안녕하세요' } };
const other: QueuedSend = { roomId: 'r1', message: { type: 'text', content: '다른 메시지' } };
const refused = (code: ErrorCode, retryAfterMs?: number): AckResponse<Stored> => ({
  ok: false,
  error: { message: code, code, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) },
});

/**
 * A server behind a socket: each attempt is recorded with its clientMessageId and answered by
 * the next scripted answer (stored: the message stored under that id, as the server answers a
 * retry with the original).
 */
function harness(script: (AttemptResult<Stored> | 'stored' | 'hang')[]) {
  const attempts: string[] = [];
  const stored = new Map<string, string>();
  let connected = true;
  let ids = 0;
  const queue = new SendQueue<Stored>({
    newId: () => `cid-${++ids}`,
    isConnected: () => connected,
    random: () => 0.5,
    attempt: (_send, clientMessageId) => {
      attempts.push(clientMessageId);
      const next = script.shift() ?? 'stored';
      if (next === 'hang') return new Promise(() => undefined);
      if (next !== 'stored') return Promise.resolve(next);
      if (!stored.has(clientMessageId)) stored.set(clientMessageId, `m${stored.size + 1}`);
      return Promise.resolve({ ok: true, data: { messageId: stored.get(clientMessageId)! } });
    },
  });
  return {
    queue,
    attempts,
    stored,
    setConnected(value: boolean) {
      connected = value;
      if (value) queue.connected();
    },
  };
}

const settled = async <T>(promise: Promise<T>) => {
  let value: T | undefined;
  let done = false;
  void promise.then((result) => {
    value = result;
    done = true;
  });
  await vi.advanceTimersByTimeAsync(0);
  return { done, value };
};

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('a send whose outcome is unknown', () => {
  it('is retried on its own with the same clientMessageId after a dropped socket, a timeout and UNAVAILABLE, and stored once', async () => {
    const server = harness([{ noAnswer: 'disconnected' }, { noAnswer: 'timeout' }, refused('UNAVAILABLE'), 'stored']);
    const result = server.queue.submit(hello);
    // The socket dropped with the send in flight: nothing more until `connect`.
    server.setConnected(false);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(server.attempts).toEqual(['cid-1']);
    server.setConnected(true);
    await vi.advanceTimersByTimeAsync(0);
    expect(server.attempts).toEqual(['cid-1', 'cid-1']);
    // Timed out, then UNAVAILABLE: each retried after a backoff.
    await vi.advanceTimersByTimeAsync(30_000);
    expect(await result).toEqual({ ok: true, data: { messageId: 'm1' } });
    expect(server.attempts).toEqual(['cid-1', 'cid-1', 'cid-1', 'cid-1']);
    expect(server.stored.size).toBe(1);
    // Stored: the id is forgotten, and the same text sent again is a new message.
    expect(server.queue.idOf(hello)).toBeNull();
    await server.queue.submit(hello);
    expect(server.attempts.at(-1)).toBe('cid-2');
  });

  it('sends nothing more when the same draft is submitted again while it is in flight (a double Enter)', async () => {
    const server = harness(['hang']);
    const first = server.queue.submit(hello);
    const second = server.queue.submit(hello);
    expect(second).toBe(first);
    expect(server.attempts).toEqual(['cid-1']);
    expect(server.queue.busy(hello)).toBe(true);
    // Another draft is another message, with its own id.
    void server.queue.submit(other);
    expect(server.attempts).toEqual(['cid-1', 'cid-2']);
  });

  it('sends nothing more when the same draft is submitted while it waits to be retried', async () => {
    const server = harness([refused('UNAVAILABLE'), 'stored']);
    const first = server.queue.submit(hello);
    await vi.advanceTimersByTimeAsync(0);
    expect(server.attempts).toEqual(['cid-1']);
    expect(server.queue.submit(hello)).toBe(first);
    await vi.advanceTimersByTimeAsync(2000);
    expect(await first).toMatchObject({ ok: true });
    expect(server.attempts).toEqual(['cid-1', 'cid-1']);
  });

  it('waits for the connection when sent offline, then sends with its id', async () => {
    const server = harness(['stored']);
    server.setConnected(false);
    const result = server.queue.submit(hello);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(server.attempts).toEqual([]);
    server.setConnected(true);
    expect(await result).toMatchObject({ ok: true });
    expect(server.attempts).toEqual(['cid-1']);
  });

  it('stops after a bounded number of attempts, and a resend of the same draft reuses the id (stored once)', async () => {
    const server = harness(Array.from({ length: SEND_ATTEMPTS }, () => ({ noAnswer: 'timeout' as const })));
    const result = server.queue.submit(hello);
    await vi.advanceTimersByTimeAsync(10 * 60_000);
    expect(await result).toEqual({ ok: false, final: false, code: 'NO_ANSWER' });
    expect(server.attempts).toEqual(Array.from({ length: SEND_ATTEMPTS }, () => 'cid-1'));
    expect(server.queue.busy(hello)).toBe(false);
    // The user presses send again: same clientMessageId, so the server answers the original if
    // one of the lost attempts was stored after all.
    expect(await server.queue.submit(hello)).toMatchObject({ ok: true });
    expect(server.attempts.at(-1)).toBe('cid-1');
    expect(server.stored.size).toBe(1);
  });

  it('waits at least retryAfterMs after RATE_LIMITED, then retries with the same id', async () => {
    const server = harness([refused('RATE_LIMITED', 20_000), 'stored']);
    const result = server.queue.submit(hello);
    await vi.advanceTimersByTimeAsync(19_999);
    expect(server.attempts).toEqual(['cid-1']);
    await vi.advanceTimersByTimeAsync(2000);
    expect(await result).toMatchObject({ ok: true });
    expect(server.attempts).toEqual(['cid-1', 'cid-1']);
  });

  it('stops at a definite refusal and forgets the id', async () => {
    for (const code of ['CONTENT_REQUIRED', 'MESSAGE_TOO_LONG', 'NOT_A_MEMBER', 'ROOM_EXPIRED', 'ROOM_NOT_FOUND'] as const) {
      const server = harness([refused(code)]);
      const outcome = await settled(server.queue.submit(hello));
      expect(outcome).toEqual({ done: true, value: { ok: false, final: true, code } });
      await vi.advanceTimersByTimeAsync(60_000);
      expect(server.attempts).toEqual(['cid-1']);
      expect(server.queue.idOf(hello)).toBeNull();
    }
  });

  it('is called off on sign-out: no retry after it', async () => {
    const server = harness([refused('UNAVAILABLE')]);
    const result = server.queue.submit(hello);
    await vi.advanceTimersByTimeAsync(0);
    server.queue.clear();
    expect(await result).toEqual({ ok: false, final: true, code: 'CANCELLED' });
    await vi.advanceTimersByTimeAsync(60_000);
    expect(server.attempts).toEqual(['cid-1']);
  });
});

describe('what follows an attempt', () => {
  it('retries what may or may not have been stored, and what the server said to send later', () => {
    expect(nextStep({ ok: true, data: {} }, 1, 0)).toEqual({ kind: 'stored' });
    expect(nextStep({ noAnswer: 'disconnected' }, 1, 0)).toEqual({ kind: 'await-connect' });
    expect(nextStep({ noAnswer: 'timeout' }, 1, 0)).toMatchObject({ kind: 'retry' });
    expect(nextStep(refused('UNAVAILABLE'), 1, 0)).toMatchObject({ kind: 'retry' });
    expect(nextStep(refused('RATE_LIMITED', 5000), 1, 0)).toEqual({ kind: 'retry', afterMs: 5000 });
    expect(nextStep(refused('TOO_MANY_REQUESTS', 5000), 1, 0)).toEqual({ kind: 'retry', afterMs: 5000 });
    // A bug: not repeated on its own, but its id is kept for a resend.
    expect(nextStep(refused('INTERNAL'), 1, 0)).toEqual({ kind: 'give-up' });
    expect(nextStep(refused('INVALID_IMAGE_URL'), 1, 0)).toEqual({ kind: 'refused' });
    expect(nextStep({ noAnswer: 'timeout' }, SEND_ATTEMPTS, 0)).toEqual({ kind: 'give-up' });
  });

  it('backs off longer after each failed attempt, within bounds', () => {
    const waits = [1, 2, 3, 4, 5].map((attempt) => (nextStep({ noAnswer: 'timeout' }, attempt, 0.5) as { afterMs: number }).afterMs);
    expect(waits).toEqual([...waits].sort((a, b) => a - b));
    expect(waits[0]).toBeGreaterThanOrEqual(500);
    expect(waits.at(-1)).toBeLessThanOrEqual(15_000);
  });
});
