import { AppError, type ErrorCode } from './errors.ts';
import type { ClientEventName } from './events.ts';
import { isUuid } from './fields.ts';
import {
  CLIENT_MESSAGE_ID,
  EMOJI_CONTENT,
  IMAGE_URL,
  TEXT_CONTENT,
  type MessageType,
} from './message-rules.ts';
import {
  errorsOf,
  fieldCheck,
  oneOf,
  parsePhase,
  required,
  serverCheck,
  type Check,
  type Fields,
  type PayloadOf,
} from './payload-contract.ts';

/**
 * Every client event's payload, declared once (docs/PROTOCOL.md §2–§6). Each declaration is
 * the ordered list of checks the event goes through — the payload's own fields and, between
 * them, the server's checks on its state — so it fixes which error a bad payload gets. The
 * types clients send (`ClientEmits`), the parsing below and docs/events.md derive from it.
 */

/**
 * The first rule of every room event (§6): a missing payload or roomId is ROOM_ID_REQUIRED; a
 * roomId that is not a UUID cannot name a room, so ROOM_NOT_FOUND. Kept lower-cased.
 */
export const ROOM_ID = required<string, string>('string (UUID)', ['ROOM_ID_REQUIRED', 'ROOM_NOT_FOUND'], (value) => {
  if (typeof value !== 'string' || value.length === 0) throw new AppError('ROOM_ID_REQUIRED');
  if (!isUuid(value)) throw new AppError('ROOM_NOT_FOUND');
  return value.toLowerCase();
});

const IS_TYPING = required<boolean, boolean>('boolean', [], (value) => {
  if (typeof value !== 'boolean') throw new AppError('INVALID_REQUEST');
  return value;
});

const roomId = fieldCheck('roomId', ROOM_ID);
const room = serverCheck('room', 'ROOM_NOT_FOUND', 'ROOM_EXPIRED');
/** [ext] §2: join-room and leave-room share a per-user budget of membership changes. */
const membershipBudget = serverCheck('membership budget', 'TOO_MANY_REQUESTS');

/** [ext] §2, §15: a user's memberships in live rooms are capped (MAX_ROOMS_PER_USER). */
const roomCap = serverCheck('rooms per user', 'TOO_MANY_ROOMS');

export const JOIN_ROOM_CHECKS = [roomId, membershipBudget, room, roomCap] as const;
export const LEAVE_ROOM_CHECKS = [
  roomId,
  membershipBudget,
  serverCheck('room', 'ROOM_NOT_FOUND'),
  serverCheck('membership', 'NOT_A_MEMBER_LEAVE'),
] as const;
export const SEND_MESSAGE_CHECKS = [
  roomId,
  room,
  serverCheck('membership', 'NOT_A_MEMBER'),
  oneOf('type', 'INVALID_MESSAGE_TYPE', {
    text: { content: TEXT_CONTENT },
    image: { imageUrl: IMAGE_URL },
    emoji: { content: EMOJI_CONTENT },
  } satisfies Record<MessageType, Fields>),
  fieldCheck('clientMessageId', CLIENT_MESSAGE_ID),
  serverCheck('rate limit', 'RATE_LIMITED'),
] as const;
export const TYPING_CHECKS = [roomId, fieldCheck('isTyping', IS_TYPING)] as const;

export type JoinRoomPayload = PayloadOf<typeof JOIN_ROOM_CHECKS>;
export type LeaveRoomPayload = PayloadOf<typeof LEAVE_ROOM_CHECKS>;
export type SendMessagePayload = PayloadOf<typeof SEND_MESSAGE_CHECKS>;
export type TypingPayload = PayloadOf<typeof TYPING_CHECKS>;

export interface ClientEventContract {
  readonly checks: readonly Check[];
  /** What the acknowledgement's `data` is. */
  readonly ack: string;
  /** A malformed payload is dropped (answered `{}`) instead of answered with an error. */
  readonly dropsMalformed: boolean;
  readonly description: string;
}

export const CLIENT_EVENT_CONTRACTS: Record<ClientEventName, ClientEventContract> = {
  'join-room': {
    checks: JOIN_ROOM_CHECKS,
    ack: '`room-joined` payload',
    dropsMalformed: false,
    description:
      'Becomes a member (idempotent). Every socket of the user, on every pod, enters the room. The caller gets `room-joined`; others get `user-joined` only if the user is new. [ext] A join from a socket not yet in the room takes one of the user\'s MEMBERSHIP_RATE_LIMIT_PER_MINUTE (60) membership changes, shared with `leave-room` across pods; past it: TOO_MANY_REQUESTS with `retryAfterMs`, and nothing changes. A user who is not yet a member and already belongs to MAX_ROOMS_PER_USER (500) live rooms is refused with TOO_MANY_ROOMS, and nothing changes. A join from a socket already in the room answers the stored memberCount, with no write and no broadcast.',
  },
  'leave-room': {
    checks: LEAVE_ROOM_CHECKS,
    ack: '`room-left` payload',
    dropsMalformed: false,
    description:
      'Ends the membership; every socket of the user leaves the room. The caller gets `room-left`, others `user-left`. [ext] Takes one of the user\'s membership changes (see `join-room`); past the budget: TOO_MANY_REQUESTS with `retryAfterMs`, and nothing changes.',
  },
  'send-message': {
    checks: SEND_MESSAGE_CHECKS,
    ack: '`new-message` payload (after COMMIT)',
    dropsMalformed: false,
    description:
      'Stores the message (group commit) and broadcasts `new-message` to the room, sender included. A retry with the same clientMessageId returns the original.',
  },
  typing: {
    checks: TYPING_CHECKS,
    ack: '`{}`',
    dropsMalformed: true,
    description:
      "Relayed as `typing-indicator` to the other sockets of the room; ignored unless the socket is in the room; throttled per user per room (the user's sockets on one pod share the budget; the `false` that ends a `true` always passes). A malformed payload is dropped.",
  },
};

/** The errors an event can answer, in the order its checks run; any event may also be UNAVAILABLE. */
export function clientEventErrors(contract: ClientEventContract): ErrorCode[] {
  return contract.dropsMalformed ? [] : [...errorsOf(contract.checks), 'UNAVAILABLE'];
}

// ---- Parsing, phase by phase (the server's own checks run between phases) ----------------

/** Phase 0 of every room event: the roomId, lower-cased. */
export function readRoomId(payload: unknown): string {
  return parsePhase(JOIN_ROOM_CHECKS, 0, payload).roomId as string;
}

export interface MessageBody {
  type: MessageType;
  content: string | null;
  imageUrl: string | null;
  clientMessageId: string | null;
}

/**
 * The payload checks of `send-message` that come after the room and membership checks: type →
 * the type's fields → clientMessageId. Only the declared fields are read.
 */
export function parseMessageBody(payload: unknown): MessageBody {
  const parsed = parsePhase(SEND_MESSAGE_CHECKS, 2, payload) as {
    type: MessageType;
    content?: string;
    imageUrl?: string;
    clientMessageId: string | null;
  };
  return {
    type: parsed.type,
    content: parsed.content ?? null,
    imageUrl: parsed.imageUrl ?? null,
    clientMessageId: parsed.clientMessageId,
  };
}

export interface TypingInput {
  roomId: string;
  isTyping: boolean;
}

/** Typing is best-effort: a malformed payload yields null and is dropped. */
export function parseTyping(payload: unknown): TypingInput | null {
  try {
    return parsePhase(TYPING_CHECKS, 0, payload) as unknown as TypingInput;
  } catch (error) {
    if (error instanceof AppError) return null;
    throw error;
  }
}
