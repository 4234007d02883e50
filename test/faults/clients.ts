/**
 * The fault suite's clients: senders that retry with the same clientMessageId until they get an
 * ack, and observers that follow PROTOCOL's recovery rule (a `seq` jump, a reconnect or a
 * `resync` → fetch `after` the last contiguous message). Each send attempt is logged as
 * ok / failed / unknown.
 */
import { randomUUID } from 'node:crypto';
import { io, type Socket } from 'socket.io-client';
import { signToken } from '@chat/auth';
import { CHAT_NAMESPACE, type AckResponse, type NewMessagePayload } from '@chat/protocol';
import { JWT_SECRET, sleep } from './infra.ts';

export interface User {
  userId: string;
  nickname: string;
  token: string;
}

export async function makeUser(nickname: string): Promise<User> {
  const userId = randomUUID();
  const { token } = await signToken({ secret: JWT_SECRET, userId, nickname, expiresInSeconds: 4 * 3600 });
  return { userId, nickname, token };
}

export async function http<T = any>(
  baseUrl: string,
  method: string,
  path: string,
  options: { token?: string; body?: unknown; timeoutMs?: number } = {},
): Promise<{ status: number; body: T }> {
  const headers: Record<string, string> = {};
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(`${baseUrl}${path}`, {
    method,
    headers,
    signal: AbortSignal.timeout(options.timeoutMs ?? 5000),
    ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
  });
  const text = await response.text();
  return { status: response.status, body: (text ? JSON.parse(text) : null) as T };
}

const jitter = (min: number, max: number) => min + Math.random() * (max - min);

/**
 * One user's connection to the cluster. It starts on its home pod (`home` modulo the pod count:
 * the scenarios spread clients with `index % podCount`) and, when a connection drops or fails,
 * reconnects after a jittered pause to the next pod in the list, round the ring of however many
 * pods there are (the load balancer's job in production). The socket is never auto-reconnected by socket.io-client, so nothing
 * buffered is replayed behind our back.
 */
export class Client {
  socket: Socket | null = null;
  currentUrl: string;
  connects = 0;
  private index: number;
  private closed = false;
  private connecting: Promise<void> | null = null;
  private readonly listeners: ((socket: Socket, reconnect: boolean) => void)[] = [];

  constructor(
    readonly user: User,
    readonly urls: () => string[],
    home: number,
    readonly reconnectDelay: [number, number] = [100, 600],
  ) {
    this.index = home;
    this.currentUrl = urls()[home % urls().length]!;
  }

  /** Called on every (re)connect with the new socket; `reconnect` is false the first time. */
  onConnect(listener: (socket: Socket, reconnect: boolean) => void): void {
    this.listeners.push(listener);
  }

  get connected(): boolean {
    return this.socket?.connected === true;
  }

  start(): Promise<void> {
    this.connecting ??= this.loop();
    return this.connecting;
  }

  /** Resolves once connected, or after `timeoutMs`. */
  async ready(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.connected && Date.now() < deadline && !this.closed) await sleep(50);
    return this.connected;
  }

  private async loop(): Promise<void> {
    let first = true;
    while (!this.closed) {
      const urls = this.urls();
      const url = urls[this.index % urls.length]!;
      const socket = io(`${url}${CHAT_NAMESPACE}`, {
        transports: ['websocket'],
        auth: { token: this.user.token },
        reconnection: false,
        forceNew: true,
        timeout: 5000,
      });
      const outcome = await new Promise<'connected' | 'failed'>((resolve) => {
        socket.once('connect', () => resolve('connected'));
        socket.once('connect_error', () => resolve('failed'));
      });
      if (outcome === 'failed' || this.closed) {
        socket.close();
        this.index += 1; // try the next pod
        await sleep(jitter(...this.reconnectDelay));
        continue;
      }
      this.socket = socket;
      this.currentUrl = url;
      this.connects += 1;
      for (const listener of this.listeners) listener(socket, !first);
      first = false;
      await new Promise<void>((resolve) => socket.once('disconnect', () => resolve()));
      if (this.closed) return;
      this.index += 1; // the pod dropped us: the next one
      await sleep(jitter(...this.reconnectDelay));
    }
  }

  close(): void {
    this.closed = true;
    this.socket?.close();
  }

  /** One emit with an acknowledgement; a timeout or a drop rejects. */
  emit<T>(event: string, payload: unknown, timeoutMs: number): Promise<AckResponse<T>> {
    const socket = this.socket;
    if (!socket?.connected) return Promise.reject(new Error('not connected'));
    return socket.timeout(timeoutMs).emitWithAck(event, payload) as Promise<AckResponse<T>>;
  }
}

// ---------------------------------------------------------------------------------------------

export type AttemptResult = 'ok' | 'failed' | 'unknown';

export interface Attempt {
  startedAt: number;
  endedAt: number;
  result: AttemptResult;
  /** The error code (failed) or why the outcome is unknown (ack timeout, drop). */
  detail: string | null;
  url: string;
}

export interface SendOp {
  userId: string;
  roomId: string;
  clientMessageId: string;
  content: string;
  attempts: Attempt[];
  acked: { messageId: string; seq: number } | null;
  /** Set when two attempts were acknowledged with different messages: a duplicate. */
  conflictingAck: boolean;
}

export interface SenderOptions {
  ackTimeoutMs: number;
  /** Pause between two messages of one sender. */
  intervalMs: [number, number];
}

/**
 * A sender: picks one of its rooms, sends a message with a fresh clientMessageId and retries
 * that same message until it is acknowledged or `giveUpAt` passes.
 */
export class Sender {
  readonly ops: SendOp[] = [];
  private stopAt = Infinity;
  private giveUpAt = Infinity;
  private running: Promise<void> | null = null;

  constructor(
    readonly client: Client,
    readonly roomIds: string[],
    readonly options: SenderOptions,
    readonly log: (entry: object) => void,
  ) {}

  start(): void {
    this.running ??= this.loop();
  }

  /** No new messages after now; messages in flight keep retrying until `giveUpAt`. */
  async stop(giveUpAt: number): Promise<void> {
    this.stopAt = Date.now();
    this.giveUpAt = giveUpAt;
    await this.running;
  }

  private async loop(): Promise<void> {
    await sleep(jitter(0, this.options.intervalMs[1]));
    while (Date.now() < this.stopAt) {
      const roomId = this.roomIds[Math.floor(Math.random() * this.roomIds.length)]!;
      const op: SendOp = {
        userId: this.client.user.userId,
        roomId,
        clientMessageId: randomUUID(),
        content: `fault ${Math.random().toString(36).slice(2, 10)}`,
        attempts: [],
        acked: null,
        conflictingAck: false,
      };
      this.ops.push(op);
      await this.deliver(op);
      await sleep(jitter(...this.options.intervalMs));
    }
  }

  private async deliver(op: SendOp): Promise<void> {
    while (!op.acked && Date.now() < this.giveUpAt) {
      if (!(await this.client.ready(1000))) continue;
      const attempt: Attempt = { startedAt: Date.now(), endedAt: 0, result: 'unknown', detail: null, url: this.client.currentUrl };
      op.attempts.push(attempt);
      let backoff = 0;
      try {
        const response = await this.client.emit<NewMessagePayload>(
          'send-message',
          { roomId: op.roomId, type: 'text', content: op.content, clientMessageId: op.clientMessageId },
          this.options.ackTimeoutMs,
        );
        if (response.ok) {
          attempt.result = 'ok';
          const data = response.data;
          if (data.clientMessageId !== op.clientMessageId) {
            attempt.result = 'failed';
            attempt.detail = 'ack for another clientMessageId';
          } else {
            op.acked = { messageId: data.messageId, seq: data.seq };
          }
        } else {
          attempt.result = 'failed';
          attempt.detail = response.error.code;
          backoff = response.error.code === 'RATE_LIMITED' ? (response.error.retryAfterMs ?? 1000) : jitter(200, 600);
        }
      } catch (error) {
        // An ack timeout or a dropped connection: the message may or may not be stored.
        attempt.result = 'unknown';
        attempt.detail = error instanceof Error ? error.message.slice(0, 60) : 'error';
        backoff = jitter(100, 400);
      }
      attempt.endedAt = Date.now();
      this.log({ kind: 'attempt', userId: op.userId, roomId: op.roomId, clientMessageId: op.clientMessageId, ...attempt, acked: op.acked });
      if (backoff > 0) await sleep(backoff);
    }
  }
}

// ---------------------------------------------------------------------------------------------

interface RoomView {
  seqs: Map<number, string>;
  contiguous: number;
  lastId: string | null;
  catchingUp: Promise<void> | null;
  again: boolean;
}

/**
 * An observer: a member of every scenario room that only listens. It keeps, per room, the
 * messages it has seen by `seq`, and follows the recovery rule: on a jump, a reconnect or a
 * `resync` it fetches `GET …/messages?after=<last contiguous messageId>` until `hasMore` is false.
 */
export class Observer {
  readonly rooms = new Map<string, RoomView>();
  fetches = 0;
  fetchFailures = 0;
  resyncs = 0;
  private closed = false;

  constructor(
    readonly client: Client,
    roomAnchors: Map<string, { seq: number; messageId: string }>,
  ) {
    for (const [roomId, anchor] of roomAnchors) {
      this.rooms.set(roomId, {
        seqs: new Map([[anchor.seq, anchor.messageId]]),
        contiguous: anchor.seq,
        lastId: anchor.messageId,
        catchingUp: null,
        again: false,
      });
    }
    client.onConnect((socket, reconnect) => {
      socket.on('new-message', (message: NewMessagePayload) => this.onMessage(message));
      socket.on('resync', () => {
        this.resyncs += 1;
        this.catchUpAll();
      });
      if (reconnect) this.catchUpAll();
    });
  }

  private onMessage(message: NewMessagePayload): void {
    const view = this.rooms.get(message.roomId);
    if (!view) return;
    this.add(view, message.seq, message.messageId);
    // Still ahead of the contiguous prefix after adding it: a jump, something was missed.
    if (message.seq > view.contiguous) this.catchUp(message.roomId);
  }

  private add(view: RoomView, seq: number, messageId: string): void {
    if (seq <= view.contiguous) return;
    view.seqs.set(seq, messageId);
    while (view.seqs.has(view.contiguous + 1)) view.contiguous += 1;
    view.lastId = view.seqs.get(view.contiguous) ?? view.lastId;
  }

  catchUpAll(): void {
    for (const roomId of this.rooms.keys()) this.catchUp(roomId);
  }

  private catchUp(roomId: string): void {
    const view = this.rooms.get(roomId)!;
    if (view.catchingUp) {
      view.again = true;
      return;
    }
    view.catchingUp = (async () => {
      do {
        view.again = false;
        await this.fetchAfter(roomId, view);
      } while (view.again && !this.closed);
      view.catchingUp = null;
    })();
  }

  private async fetchAfter(roomId: string, view: RoomView): Promise<void> {
    const deadline = Date.now() + 120_000;
    while (!this.closed && Date.now() < deadline) {
      try {
        const base = this.client.currentUrl;
        const after = view.lastId ? `&after=${view.lastId}` : '';
        this.fetches += 1;
        const { status, body } = await http<{ messages: { messageId: string; seq: number }[]; hasMore: boolean }>(
          base,
          'GET',
          `/api/rooms/${roomId}/messages?limit=100${after}`,
          { token: this.client.user.token, timeoutMs: 4000 },
        );
        if (status !== 200) throw new Error(`status ${status}`);
        for (const message of body.messages) this.add(view, message.seq, message.messageId);
        if (!body.hasMore) return;
      } catch {
        this.fetchFailures += 1;
        await sleep(jitter(300, 800));
      }
    }
  }

  /** Settled: no catch-up in flight. */
  idle(): boolean {
    return [...this.rooms.values()].every((view) => view.catchingUp === null);
  }

  seen(roomId: string): Set<string> {
    return new Set(this.rooms.get(roomId)?.seqs.values() ?? []);
  }

  close(): void {
    this.closed = true;
    this.client.close();
  }
}
