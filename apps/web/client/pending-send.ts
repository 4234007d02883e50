import type { AckResponse, ErrorCode } from '@chat/protocol';
import { backoffMs } from './backoff.ts';

/**
 * Sends whose outcome is not known yet (PROTOCOL §4, §14): each draft gets one
 * `clientMessageId`, kept until the server has stored the message or refused it for good, and
 * every attempt — automatic or the user pressing send again — carries that same id. The server
 * stores a message once per `(userId, clientMessageId)` and answers a retry with the original,
 * so a send retried after a lost connection, a timed-out ack or `UNAVAILABLE` is stored once
 * and shown once (the timeline holds messages by messageId). No DOM and no network: the
 * attempt itself is handed in; unit-tested in apps/web/test.
 */

export type OutgoingMessage = { type: 'text' | 'emoji'; content: string } | { type: 'image'; imageUrl: string };

/** What one attempt got: the server's answer, or none (the socket dropped with it in flight, or the ack timed out). */
export type AttemptResult<T> = AckResponse<T> | { readonly noAnswer: 'disconnected' | 'timeout' };

export type SendResult<T> =
  | { readonly ok: true; readonly data: T }
  /**
   * `final`: the server refused the message (an invalid draft, not a member, an expired room…)
   * or it was called off (the room was left): its id is forgotten. Otherwise the outcome is
   * unknown and retrying on its own stopped: the id is kept, and sending the same draft again
   * reuses it.
   */
  | { readonly ok: false; readonly final: boolean; readonly code: ErrorCode | 'NO_ANSWER' | 'CANCELLED' };

/** What to do after an attempt. */
export type Step =
  /** Stored (a retry is answered with the original): forget the id. */
  | { readonly kind: 'stored' }
  /** Refused for good: forget the id (the same draft sent again is a new message). */
  | { readonly kind: 'refused' }
  /** Try again with the same id after `afterMs`. */
  | { readonly kind: 'retry'; readonly afterMs: number }
  /** Try again with the same id once the socket is connected. */
  | { readonly kind: 'await-connect' }
  /** Stop trying on our own, but keep the id for the user's next press of send. */
  | { readonly kind: 'give-up' };

/** Attempts one press of send makes on its own before it waits for the user. */
export const SEND_ATTEMPTS = 6;
/** Drafts that gave up, kept for a resend with their id (older ones are forgotten). */
const IDLE_KEPT = 50;
/** Backoff between attempts whose outcome is unknown (1 s, 2 s, 4 s, … up to 15 s, with jitter). */
export const SEND_BACKOFF = { baseMs: 1000, maxMs: 15_000 } as const;
/** The longest a `retryAfterMs` is waited (a send budget is per minute). */
const RETRY_AFTER_MAX_MS = 60_000;
/** Spread on top of `retryAfterMs`, so that a crowd told the same time does not return at once. */
const RETRY_AFTER_SPREAD_MS = 1000;

/**
 * After attempt number `attempts` got `result`: what next. Only answers that leave the
 * outcome unknown, or that say "later", are retried:
 * - no answer (disconnected: after the next `connect`; ack timed out: after a backoff);
 * - `UNAVAILABLE` (PROTOCOL §11, §14: the outcome is unknown, retry with the same id);
 * - `RATE_LIMITED` / `TOO_MANY_REQUESTS`: nothing was stored; not before `retryAfterMs`;
 * - `INTERNAL` is a bug: not retried on its own, but the id is kept (the outcome is unknown).
 * Any other refusal (validation errors, `NOT_A_MEMBER`, `ROOM_EXPIRED`, `ROOM_NOT_FOUND`…) is
 * final. `random` is in [0, 1).
 */
export function nextStep(result: AttemptResult<unknown>, attempts: number, random: number): Step {
  const spent = attempts >= SEND_ATTEMPTS;
  if ('noAnswer' in result) {
    if (spent) return { kind: 'give-up' };
    return result.noAnswer === 'disconnected'
      ? { kind: 'await-connect' }
      : { kind: 'retry', afterMs: backoffMs(attempts, random, SEND_BACKOFF) };
  }
  if (result.ok) return { kind: 'stored' };
  const { code, retryAfterMs } = result.error;
  switch (code) {
    case 'UNAVAILABLE':
      return spent ? { kind: 'give-up' } : { kind: 'retry', afterMs: backoffMs(attempts, random, SEND_BACKOFF) };
    case 'RATE_LIMITED':
    case 'TOO_MANY_REQUESTS': {
      if (spent) return { kind: 'give-up' };
      const told = typeof retryAfterMs === 'number' && Number.isFinite(retryAfterMs) && retryAfterMs > 0 ? retryAfterMs : 0;
      const wait = Math.min(RETRY_AFTER_MAX_MS, Math.max(told, backoffMs(attempts, 0, SEND_BACKOFF)));
      return { kind: 'retry', afterMs: Math.round(wait + random * RETRY_AFTER_SPREAD_MS) };
    }
    case 'INTERNAL':
      return { kind: 'give-up' };
    default:
      return { kind: 'refused' };
  }
}

export interface QueuedSend {
  readonly roomId: string;
  readonly message: OutgoingMessage;
}

/** The same draft for the same room: what one `clientMessageId` stands for. */
export function draftKey({ roomId, message }: QueuedSend): string {
  return JSON.stringify([roomId, message.type, message.type === 'image' ? message.imageUrl : message.content]);
}

export interface SendQueueDeps<T> {
  /** A fresh `clientMessageId`. */
  newId(): string;
  isConnected(): boolean;
  /** One emit of `send-message` with this id; resolves with its answer, or with no answer. */
  attempt(send: QueuedSend, clientMessageId: string): Promise<AttemptResult<T>>;
  random(): number;
}

interface Pending<T> {
  readonly key: string;
  readonly send: QueuedSend;
  readonly clientMessageId: string;
  attempts: number;
  /** `offline`: waiting for `connect`; `idle`: gave up, the id kept for a resend. */
  state: 'sending' | 'waiting' | 'offline' | 'idle';
  timer: ReturnType<typeof setTimeout> | undefined;
  /** While not idle: what every submit of this draft resolves with. */
  result: Promise<SendResult<T>> | null;
  settle: (result: SendResult<T>) => void;
}

/** The page's sends not yet known to be stored, by draft. */
export class SendQueue<T> {
  private readonly pending = new Map<string, Pending<T>>();

  constructor(private readonly deps: SendQueueDeps<T>) {}

  /**
   * Sends a draft, retrying on its own with one `clientMessageId`. A second submit of the
   * same draft while the first is in flight or waiting to retry sends nothing: it resolves
   * with the first's outcome. After retrying stopped (`final: false`), a submit of the same
   * draft starts again with the same id.
   */
  submit(send: QueuedSend): Promise<SendResult<T>> {
    const key = draftKey(send);
    const known = this.pending.get(key);
    if (known?.result) return known.result;
    const entry: Pending<T> = known ?? {
      key,
      send,
      clientMessageId: this.deps.newId(),
      attempts: 0,
      state: 'idle',
      timer: undefined,
      result: null,
      settle: () => undefined,
    };
    entry.attempts = 0;
    entry.result = new Promise((resolve) => {
      entry.settle = resolve;
    });
    if (!known) {
      this.pending.set(key, entry);
      this.forgetOldIdle();
    }
    this.go(entry);
    return entry.result;
  }

  /** The socket is connected (again): sends waiting for it go now, with their ids. */
  connected(): void {
    for (const entry of [...this.pending.values()]) if (entry.state === 'offline') this.go(entry);
  }

  /** The id a draft is sent with, while it is pending (for tests and diagnostics). */
  idOf(send: QueuedSend): string | null {
    return this.pending.get(draftKey(send))?.clientMessageId ?? null;
  }

  /** Whether a send of this draft is in flight or will be retried on its own. */
  busy(send: QueuedSend): boolean {
    return Boolean(this.pending.get(draftKey(send))?.result);
  }

  /**
   * Calls off the sends to a room the user is no longer in (`room-left`): they would only be
   * refused `NOT_A_MEMBER`, each refusal spending the user's failed-event budget (PROTOCOL §15).
   */
  cancelRoom(roomId: string): void {
    for (const entry of [...this.pending.values()]) if (entry.send.roomId === roomId) this.cancel(entry);
  }

  /** Calls off every send (signing out): they resolve as cancelled and are never retried. */
  clear(): void {
    for (const entry of [...this.pending.values()]) this.cancel(entry);
  }

  private forgetOldIdle(): void {
    const idle = [...this.pending.values()].filter((entry) => entry.state === 'idle' && !entry.result);
    for (const entry of idle.slice(0, Math.max(0, idle.length - IDLE_KEPT))) this.pending.delete(entry.key);
  }

  private cancel(entry: Pending<T>): void {
    clearTimeout(entry.timer);
    this.pending.delete(entry.key);
    this.finish(entry, { ok: false, final: true, code: 'CANCELLED' });
  }

  private go(entry: Pending<T>): void {
    clearTimeout(entry.timer);
    entry.timer = undefined;
    if (!this.deps.isConnected()) {
      entry.state = 'offline';
      return;
    }
    entry.state = 'sending';
    entry.attempts += 1;
    this.deps.attempt(entry.send, entry.clientMessageId).then(
      (result) => this.answered(entry, result),
      () => this.answered(entry, { noAnswer: 'timeout' }),
    );
  }

  private answered(entry: Pending<T>, result: AttemptResult<T>): void {
    // Called off meanwhile: whatever came is for nobody.
    if (this.pending.get(entry.key) !== entry || entry.state !== 'sending') return;
    const step = nextStep(result, entry.attempts, this.deps.random());
    switch (step.kind) {
      case 'stored':
        this.pending.delete(entry.key);
        if ('ok' in result && result.ok) this.finish(entry, { ok: true, data: result.data });
        return;
      case 'refused':
        this.pending.delete(entry.key);
        this.finish(entry, { ok: false, final: true, code: 'ok' in result && !result.ok ? result.error.code : 'NO_ANSWER' });
        return;
      case 'give-up':
        entry.state = 'idle';
        this.finish(entry, { ok: false, final: false, code: 'ok' in result && !result.ok ? result.error.code : 'NO_ANSWER' });
        return;
      case 'await-connect':
        // Connected again already (the `connect` came before this answer): go now.
        if (this.deps.isConnected()) this.go(entry);
        else entry.state = 'offline';
        return;
      case 'retry':
        entry.state = 'waiting';
        entry.timer = setTimeout(() => {
          if (this.pending.get(entry.key) === entry && entry.state === 'waiting') this.go(entry);
        }, step.afterMs);
        return;
    }
  }

  private finish(entry: Pending<T>, result: SendResult<T>): void {
    entry.result = null;
    entry.settle(result);
  }
}
