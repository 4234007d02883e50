import { randomUUID } from 'node:crypto';
import { io, type Socket } from 'socket.io-client';
import { signToken } from '@chat/auth';
import {
  CHAT_NAMESPACE,
  type AckResponse,
  type ClientEmits,
  type ServerToClientEvents,
} from '@chat/protocol';
import { TEST_JWT_SECRET } from './services.ts';

export type TestSocket = Socket<ServerToClientEvents, ClientEmits>;

export interface TestUser {
  userId: string;
  nickname: string;
  token: string;
}

export async function makeUser(nickname = '김철수', options: { expiresInSeconds?: number } = {}): Promise<TestUser> {
  const userId = randomUUID();
  const { token } = await signToken({
    secret: TEST_JWT_SECRET,
    userId,
    nickname,
    ...(options.expiresInSeconds === undefined ? {} : { expiresInSeconds: options.expiresInSeconds }),
  });
  return { userId, nickname, token };
}

const openSockets = new Set<Socket>();

/** A real socket.io-client on the websocket transport; resolves once connected. */
export async function connect(baseUrl: string, token: string | undefined): Promise<TestSocket> {
  const socket: TestSocket = io(`${baseUrl}${CHAT_NAMESPACE}`, {
    transports: ['websocket'],
    auth: token === undefined ? {} : { token },
    reconnection: false,
    forceNew: true,
  });
  openSockets.add(socket);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('connect_error', (error) => reject(error));
  });
  return socket;
}

/** Resolves with the connect_error a refused handshake produces. */
export function connectError(
  baseUrl: string,
  options: Parameters<typeof io>[1] = {},
): Promise<Error & { data?: { code?: string } }> {
  const socket = io(`${baseUrl}${CHAT_NAMESPACE}`, {
    transports: ['websocket'],
    reconnection: false,
    forceNew: true,
    ...options,
  });
  openSockets.add(socket);
  return new Promise((resolve, reject) => {
    socket.once('connect', () => reject(new Error('connected, expected a refusal')));
    socket.once('connect_error', (error) => {
      socket.close();
      resolve(error as Error & { data?: { code?: string } });
    });
  });
}

export function closeAllSockets(): void {
  for (const socket of openSockets) socket.close();
  openSockets.clear();
}

/** The next `event` on the socket, or a rejection after `timeoutMs`. */
export function nextEvent<E extends keyof ServerToClientEvents>(
  socket: TestSocket,
  event: E,
  timeoutMs = 3000,
): Promise<Parameters<ServerToClientEvents[E]>[0]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.off(event, listener as never);
      reject(new Error(`no ${String(event)} within ${timeoutMs} ms`));
    }, timeoutMs);
    const listener = (payload: Parameters<ServerToClientEvents[E]>[0]) => {
      clearTimeout(timer);
      resolve(payload);
    };
    socket.once(event, listener as never);
  });
}

/** Collects every `event` the socket receives from now on. */
export function record<E extends keyof ServerToClientEvents>(socket: TestSocket, event: E) {
  const seen: Parameters<ServerToClientEvents[E]>[0][] = [];
  socket.on(event, ((payload: Parameters<ServerToClientEvents[E]>[0]) => seen.push(payload)) as never);
  return seen;
}

/** Emits with an acknowledgement and returns it (raw emit: hostile payloads allowed). */
export function emitAck<T = unknown>(socket: TestSocket, event: string, payload: unknown, timeoutMs = 5000): Promise<AckResponse<T>> {
  return (socket as unknown as Socket).timeout(timeoutMs).emitWithAck(event, payload) as Promise<AckResponse<T>>;
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Joins the room and disconnects, so the user is a member who is offline. */
export async function joinedOffline(baseUrl: string, user: TestUser, roomId: string): Promise<void> {
  const socket = await connect(baseUrl, user.token);
  try {
    const ack = await emitAck<unknown>(socket, 'join-room', { roomId });
    if ((ack as { ok?: unknown }).ok !== true) throw new Error(`join-room refused: ${JSON.stringify(ack)}`);
  } finally {
    socket.close();
  }
}
