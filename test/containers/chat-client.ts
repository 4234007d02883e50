/**
 * The chat as a client sees it through nginx: dev login, rooms, history and deletes over HTTP,
 * and Socket.IO clients (websocket only) that send a steady stream of acknowledged messages.
 */
import { io, type Socket } from 'socket.io-client';

export interface Login {
  accessToken: string;
  userId: string;
}

export interface HistoryMessage {
  messageId: string;
  content: string | null;
}

export class ChatHttp {
  constructor(private readonly base: string) {}

  async request<T>(method: string, pathname: string, token?: string, body?: unknown): Promise<{ status: number; body: T }> {
    const response = await fetch(`${this.base}${pathname}`, {
      method,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
      signal: AbortSignal.timeout(10_000),
    });
    const text = await response.text();
    return { status: response.status, body: (text ? JSON.parse(text) : null) as T };
  }

  async login(nickname: string): Promise<Login> {
    const { status, body } = await this.request<Login>('POST', '/api/auth/token', undefined, { nickname });
    if (status !== 200) throw new Error(`dev login answered ${status}`);
    return body;
  }

  async createRoom(token: string, name: string): Promise<string> {
    const { status, body } = await this.request<{ roomId: string }>('POST', '/api/rooms', token, { name });
    if (status !== 201) throw new Error(`POST /api/rooms answered ${status}`);
    return body.roomId;
  }

  /** Every stored (not deleted) message of the room, through nginx. */
  history(roomId: string): Promise<HistoryMessage[]> {
    return readHistory(roomId, (pathname) => this.request('GET', pathname));
  }
}

type Get = (pathname: string) => Promise<{ status: number; body: unknown }>;

/** Every stored (not deleted) message of a room, newest first, page by page (bounded). */
export async function readHistory(roomId: string, get: Get): Promise<HistoryMessage[]> {
  const all: HistoryMessage[] = [];
  let before: string | undefined;
  for (let page = 0; page < 100; page++) {
    const { status, body } = await get(`/api/rooms/${roomId}/messages?limit=100${before ? `&before=${before}` : ''}`);
    if (status !== 200) throw new Error(`history answered ${status}`);
    const { messages, hasMore } = body as { messages: HistoryMessage[]; hasMore: boolean };
    all.push(...messages);
    if (!hasMore || messages.length === 0) return all;
    before = messages.at(-1)!.messageId;
  }
  throw new Error('history: more than 100 pages');
}

export interface NewMessage {
  messageId: string;
  roomId: string;
  content: string | null;
}

type Ack = { ok: true; data: NewMessage } | { ok: false; error: { message: string; code: string } };

/** A client as apps/web/client/main.ts behaves: websocket only, reconnects after a drain too. */
export function connect(base: string, token: string): Socket {
  const socket = io(`${base}/socket`, {
    auth: { token },
    transports: ['websocket'],
    reconnectionDelay: 100,
    reconnectionDelayMax: 1000,
    timeout: 5000,
  });
  // A draining pod lets go of its sockets; Socket.IO does not retry that on its own.
  socket.on('disconnect', (reason) => {
    if (reason === 'io server disconnect') socket.connect();
  });
  return socket;
}

/** Resolves on the socket's next `event` (or its connection when already connected), or rejects after `ms`. */
export function next<T = unknown>(socket: Socket, event: string, ms: number, accept: (payload: T) => boolean = () => true): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.off(event, listener);
      reject(new Error(`no ${event} within ${ms} ms`));
    }, ms);
    const listener = (payload: T) => {
      if (!accept(payload)) return;
      clearTimeout(timer);
      socket.off(event, listener);
      resolve(payload);
    };
    socket.on(event, listener);
  });
}

export async function emitAck<T>(socket: Socket, event: string, payload: unknown, ms = 5000): Promise<T> {
  return (await socket.timeout(ms).emitWithAck(event, payload)) as T;
}

export async function send(socket: Socket, roomId: string, content: string, clientMessageId?: string): Promise<NewMessage> {
  const ack = await emitAck<Ack>(socket, 'send-message', { roomId, type: 'text', content, clientMessageId });
  if (!ack.ok) throw new Error(`send-message refused: ${ack.error.code}`);
  return ack.data;
}

/**
 * Sends numbered messages one after another, each waiting for its acknowledgement; a send that
 * fails (the pod died, the socket is reconnecting) is retried with the same clientMessageId,
 * which stores it at most once. Records every acknowledged message.
 */
export class SteadySender {
  readonly acked = new Map<string, string>(); // clientMessageId → messageId
  failures = 0;
  private stopped = false;
  private loop: Promise<void> | null = null;
  private sequence = 0;

  constructor(
    readonly name: string,
    private readonly socket: Socket,
    private readonly roomId: string,
  ) {}

  start(): void {
    this.stopped = false;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }

  /** Acknowledged so far; `waitFor` resolves once `count` more have been acknowledged. */
  async waitFor(count: number, ms: number): Promise<void> {
    const target = this.acked.size + count;
    const deadline = Date.now() + ms;
    while (this.acked.size < target) {
      if (Date.now() > deadline) throw new Error(`${this.name}: ${this.acked.size} acknowledged, wanted ${target} within ${ms} ms`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  private async run(): Promise<void> {
    // Bounded: at most 20,000 sends per start, and each attempt is bounded by its ack timeout.
    for (let n = 0; n < 20_000 && !this.stopped; n++) {
      const clientMessageId = `${this.name}-${this.sequence++}`;
      for (let attempt = 0; attempt < 20 && !this.stopped; attempt++) {
        for (let wait = 0; wait < 200 && !this.socket.connected && !this.stopped; wait++) {
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        try {
          const message = await send(this.socket, this.roomId, clientMessageId, clientMessageId);
          this.acked.set(clientMessageId, message.messageId);
          break;
        } catch {
          this.failures++;
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}
