import type {
  JoinRoomPayload,
  LeaveRoomPayload,
  SendMessagePayload,
  TypingPayload,
} from './client-payloads.ts';
import type { ErrorCode } from './errors.ts';
import type { ServerPayload } from './server-payloads.ts';

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
  roomLifetimeChanged: 'room-lifetime-changed',
  roomOccupied: 'room-occupied',
  roomVacated: 'room-vacated',
  presence: 'presence',
  tokenExpired: 'token-expired',
  serverDraining: 'server-draining',
  resync: 'resync',
  error: 'error',
} as const;

export const roomChannel = (roomId: string): string => `room:${roomId}`;
export const userChannel = (userId: string): string => `user:${userId}`;

/** Server payloads, derived from their declarations in server-payloads.ts. */
export interface RoomJoinedPayload extends ServerPayload<'room-joined'> {}
export interface UserJoinedPayload extends ServerPayload<'user-joined'> {}
export interface RoomLeftPayload extends ServerPayload<'room-left'> {}
export interface UserLeftPayload extends ServerPayload<'user-left'> {}
export interface NewMessagePayload extends ServerPayload<'new-message'> {}
export interface TypingIndicatorPayload extends ServerPayload<'typing-indicator'> {}
export interface MessageDeletedPayload extends ServerPayload<'message-deleted'> {}
export interface RoomExpiredPayload extends ServerPayload<'room-expired'> {}
export interface RoomExpiringPayload extends ServerPayload<'room-expiring'> {}
export interface RoomLifetimeChangedPayload extends ServerPayload<'room-lifetime-changed'> {}
export interface PresencePayload extends ServerPayload<'presence'> {}
export interface ErrorPayload extends ServerPayload<'error'> {}

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
  /** [ext] The server API moved the room's expiry (extend, close): it now expires at `expiresAt`. A change of its feed. */
  'room-lifetime-changed': (payload: RoomLifetimeChangedPayload) => void;
  /** [ext] The room's first member came online (after a grace): a change of its feed. */
  'room-occupied': (payload: ServerPayload<'room-occupied'>) => void;
  /** [ext] The room's last online member went offline (after a grace): a change of its feed. */
  'room-vacated': (payload: ServerPayload<'room-vacated'>) => void;
  presence: (payload: PresencePayload) => void;
  'token-expired': (payload: ServerPayload<'token-expired'>) => void;
  /** [ext] This pod is shutting down: reconnect (the load balancer picks another pod). */
  'server-draining': (payload: ServerPayload<'server-draining'>) => void;
  /**
   * [ext] Broadcasts may have been missed: catch up with `?after=` (PROTOCOL §12, §14).
   * `{}`: this pod lost its subscription to the bus channel of membership moves and has it
   * back, so for every room. `{ roomId }`: for that room only: a pod with a member of it died
   * and may have committed a message it never broadcast; a pod that could not publish to the
   * bus broadcast to the room meanwhile and now can; or this pod's subscription to the room's
   * bus channel was confirmed only after the socket was put into the room, or was lost and is
   * back.
   */
  resync: (payload: ServerPayload<'resync'>) => void;
  error: (payload: ErrorPayload) => void;
}

/** The shapes the typed client sees for its own emits: payloads as declared in client-payloads.ts, acks optional. */
export interface ClientEmits {
  'join-room': (payload: JoinRoomPayload, ack?: Ack<RoomJoinedPayload>) => void;
  'leave-room': (payload: LeaveRoomPayload, ack?: Ack<RoomLeftPayload>) => void;
  'send-message': (payload: SendMessagePayload, ack?: Ack<NewMessagePayload>) => void;
  typing: (payload: TypingPayload, ack?: Ack<Record<string, never>>) => void;
}
