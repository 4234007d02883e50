import type {
  JoinRoomPayload,
  LeaveRoomPayload,
  SendMessagePayload,
  TypingPayload,
} from './client-payloads.ts';
import type { ErrorCode } from './errors.ts';
import type { MessageType } from './message-rules.ts';

/** The Socket.IO namespace of the chat (docs/PROTOCOL.md §1). */
export const CHAT_NAMESPACE = '/socket';

export const CLIENT_EVENTS = {
  joinRoom: 'join-room',
  leaveRoom: 'leave-room',
  sendMessage: 'send-message',
  typing: 'typing',
} as const;
export type ClientEventName = (typeof CLIENT_EVENTS)[keyof typeof CLIENT_EVENTS];

export const SERVER_EVENTS = {
  roomJoined: 'room-joined',
  userJoined: 'user-joined',
  roomLeft: 'room-left',
  userLeft: 'user-left',
  newMessage: 'new-message',
  typingIndicator: 'typing-indicator',
  messageDeleted: 'message-deleted',
  roomExpired: 'room-expired',
  roomExpiring: 'room-expiring',
  presence: 'presence',
  tokenExpired: 'token-expired',
  serverDraining: 'server-draining',
  resync: 'resync',
  error: 'error',
} as const;

export const roomChannel = (roomId: string): string => `room:${roomId}`;
export const userChannel = (userId: string): string => `user:${userId}`;

export interface RoomJoinedPayload {
  roomId: string;
  memberCount: number;
}
export interface UserJoinedPayload {
  roomId: string;
  userId: string;
  nicknameMask: string;
  memberCount: number;
}
export interface RoomLeftPayload {
  roomId: string;
}
export interface UserLeftPayload {
  roomId: string;
  userId: string;
  memberCount: number;
}
export interface NewMessagePayload {
  messageId: string;
  roomId: string;
  userId: string;
  nicknameMask: string;
  type: MessageType;
  content: string | null;
  imageUrl: string | null;
  createdAt: string;
  seq: number;
  clientMessageId: string | null;
}
export interface TypingIndicatorPayload {
  roomId: string;
  userId: string;
  nicknameMask: string;
  isTyping: boolean;
}
export interface MessageDeletedPayload {
  roomId: string;
  messageId: string;
}
export interface RoomExpiredPayload {
  roomId: string;
}
export interface RoomExpiringPayload {
  roomId: string;
  expiresAt: string;
}
export interface PresencePayload {
  roomId: string;
  userId: string;
  nicknameMask: string;
  online: boolean;
}
export interface ErrorPayload {
  message: string;
  code: ErrorCode;
  event: ClientEventName;
  retryAfterMs?: number;
}

export type AckResponse<T> =
  | { ok: true; data: T }
  | { ok: false; error: { message: string; code: ErrorCode; retryAfterMs?: number } };
export type Ack<T> = (response: AckResponse<T>) => void;

/** What a client may send. The payloads are `unknown` on purpose: the server trusts nothing. */
export interface ClientToServerEvents {
  'join-room': (payload: unknown, ack?: Ack<RoomJoinedPayload>) => void;
  'leave-room': (payload: unknown, ack?: Ack<RoomLeftPayload>) => void;
  'send-message': (payload: unknown, ack?: Ack<NewMessagePayload>) => void;
  typing: (payload: unknown, ack?: Ack<Record<string, never>>) => void;
}

export interface ServerToClientEvents {
  'room-joined': (payload: RoomJoinedPayload) => void;
  'user-joined': (payload: UserJoinedPayload) => void;
  'room-left': (payload: RoomLeftPayload) => void;
  'user-left': (payload: UserLeftPayload) => void;
  'new-message': (payload: NewMessagePayload) => void;
  'typing-indicator': (payload: TypingIndicatorPayload) => void;
  'message-deleted': (payload: MessageDeletedPayload) => void;
  'room-expired': (payload: RoomExpiredPayload) => void;
  'room-expiring': (payload: RoomExpiringPayload) => void;
  presence: (payload: PresencePayload) => void;
  'token-expired': (payload: Record<string, never>) => void;
  /** [ext] This pod is shutting down: reconnect (the load balancer picks another pod). */
  'server-draining': (payload: Record<string, never>) => void;
  /**
   * [ext] Broadcasts may have been missed: fetch `GET …/messages?after=<last messageId>`.
   * `{}`: this pod lost its Redis subscription and has just re-subscribed, so for every room.
   * `{ roomId }`: a pod with a sender in that room died, and may have committed a message it
   * never got to broadcast, so for that room.
   */
  resync: (payload: { roomId?: string }) => void;
  error: (payload: ErrorPayload) => void;
}

/** The shapes the typed client sees for its own emits: payloads as declared in client-payloads.ts, acks optional. */
export interface ClientEmits {
  'join-room': (payload: JoinRoomPayload, ack?: Ack<RoomJoinedPayload>) => void;
  'leave-room': (payload: LeaveRoomPayload, ack?: Ack<RoomLeftPayload>) => void;
  'send-message': (payload: SendMessagePayload, ack?: Ack<NewMessagePayload>) => void;
  typing: (payload: TypingPayload, ack?: Ack<Record<string, never>>) => void;
}
