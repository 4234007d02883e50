import { z } from 'zod';
import type { UserJoinedPayload } from './events.ts';
import { isUuid } from './fields.ts';
import { MESSAGE_TYPES } from './message-rules.ts';
import { NICKNAME_MAX_CHARACTERS, ROOM_NAME_MAX_CHARACTERS, readName } from './text-rules.ts';

/**
 * REST payloads (docs/PROTOCOL.md §7–9, §13). Issue messages are error codes from the catalog,
 * so the HTTP layer can answer with the protocol's exact message for the first failing rule.
 */
export const HISTORY_DEFAULT_LIMIT = 50;
export const HISTORY_MAX_LIMIT = 100;
export const ROOM_LIST_DEFAULT_LIMIT = 20;

const uuid = z.uuid({ error: 'INVALID_REQUEST' });
/**
 * A `limit` (PROTOCOL §7): decimal digits only, else `invalid` (a sign, a point, an exponent,
 * blank); zero is `invalid`; any value above `max` is `tooLarge`, however many digits it has.
 * The digits are compared as text (leading zeros dropped) before they become a number, so a
 * value too long for a number is still too large rather than invalid.
 */
const integerString = (tooLarge: 'LIMIT_TOO_LARGE', invalid: 'INVALID_LIMIT', max: number) =>
  z
    .string({ error: invalid })
    .regex(/^\d+$/, { error: invalid })
    .transform((digits, context) => {
      const significant = digits.replace(/^0+/, '');
      if (significant === '') {
        context.addIssue({ code: 'custom', message: invalid });
        return z.NEVER;
      }
      if (significant.length > String(max).length || Number(significant) > max) {
        context.addIssue({ code: 'custom', message: tooLarge });
        return z.NEVER;
      }
      return Number(significant);
    });

export const historyQuerySchema = z.object({
  limit: integerString('LIMIT_TOO_LARGE', 'INVALID_LIMIT', HISTORY_MAX_LIMIT).optional(),
  before: z.string({ error: 'BEFORE_NOT_FOUND' }).optional(),
  after: z.string({ error: 'AFTER_NOT_FOUND' }).optional(),
});
export type HistoryQuery = z.infer<typeof historyQuerySchema>;

export const roomListQuerySchema = z.object({
  limit: integerString('LIMIT_TOO_LARGE', 'INVALID_LIMIT', HISTORY_MAX_LIMIT).optional(),
  before: uuid.optional(),
});

/** A name as `readName` takes it (text-rules.ts): trimmed, bounded, visible, no refused character. */
const name = (maxCharacters: number, error: 'INVALID_ROOM_NAME' | 'INVALID_NICKNAME') =>
  z
    .string({ error })
    .transform((value, context) => {
      const read = readName(value, maxCharacters);
      if (read === null) {
        context.addIssue({ code: 'custom', message: error });
        return z.NEVER;
      }
      return read;
    });

export const createRoomBodySchema = z.object({
  name: name(ROOM_NAME_MAX_CHARACTERS, 'INVALID_ROOM_NAME'),
  ttlSeconds: z
    .number({ error: 'INVALID_TTL' })
    .int({ error: 'INVALID_TTL' })
    .min(1, { error: 'INVALID_TTL' })
    .max(86_400, { error: 'INVALID_TTL' })
    .optional(),
});
export type CreateRoomBody = z.infer<typeof createRoomBodySchema>;

export const devLoginBodySchema = z.object({
  // The handshake applies the same rule; never sign a token that cannot be used.
  nickname: name(NICKNAME_MAX_CHARACTERS, 'INVALID_NICKNAME'),
});

export const historyMessageSchema = z.object({
  messageId: z.string(),
  roomId: z.string(),
  seq: z.number(),
  userId: z.string(),
  nickname: z.string(),
  nicknameMask: z.string(),
  type: z.enum(MESSAGE_TYPES),
  content: z.string().nullable(),
  imageUrl: z.string().nullable(),
  createdAt: z.string(),
  /** [ext] Only for a message published by the server API as a bot / system sender (§17). */
  sender: z.object({ kind: z.enum(['bot', 'system']), id: z.string(), name: z.string() }).optional(),
});
export type HistoryMessage = z.infer<typeof historyMessageSchema>;

export const historyResponseSchema = z.object({
  messages: z.array(historyMessageSchema),
  hasMore: z.boolean(),
});

export const roomSchema = z.object({
  roomId: z.string(),
  name: z.string(),
  memberCount: z.number(),
  createdAt: z.string(),
  expiresAt: z.string(),
  expired: z.boolean(),
  messageCount: z.number(),
  lastMessageAt: z.string().nullable(),
});
export type RoomView = z.infer<typeof roomSchema>;

export const createdRoomSchema = z.object({
  roomId: z.string(),
  name: z.string(),
  createdBy: z.string(),
  memberCount: z.number(),
  createdAt: z.string(),
  expiresAt: z.string(),
});

export const roomListSchema = z.object({ rooms: z.array(roomSchema), hasMore: z.boolean() });

export const devLoginResponseSchema = z.object({
  accessToken: z.string(),
  userId: z.string(),
  expiresAt: z.string(),
});

export const errorBodySchema = z.object({
  statusCode: z.number(),
  error: z.string(),
  message: z.string(),
  code: z.string(),
});

export const roomMemberSchema = z.object({
  userId: z.string(),
  nicknameMask: z.string(),
  joinedAt: z.string(),
  online: z.boolean(),
});

/** [ext] The member list is paged like history: `after` is the last userId of the previous page. */
export const MEMBER_LIST_DEFAULT_LIMIT = 50;

/** A place in a room's joining order: the member list is sorted by `joinedAt`, then `userId`. */
export interface MemberListPosition {
  joinedAt: Date;
  userId: string;
}

/**
 * [ext] The member list's `nextCursor` (PROTOCOL §9): the position of a page's last member, so a
 * pager can continue after that member has left the room (which `after` cannot: it names a
 * member, and looks their position up). Opaque to clients; `joined_at` is stored to the
 * millisecond, so the epoch milliseconds are exact.
 */
export function memberListCursor(position: MemberListPosition): string {
  return `${position.joinedAt.getTime()}:${position.userId}`;
}

const MEMBER_CURSOR = /^(\d{1,16}):(.+)$/;
/** The largest time a Date holds. */
const MAX_DATE_MS = 8.64e15;

const memberCursorSchema = z.string({ error: 'INVALID_REQUEST' }).transform((text, context): MemberListPosition => {
  const match = MEMBER_CURSOR.exec(text);
  const ms = Number(match?.[1]);
  const userId = match?.[2];
  if (!match || ms > MAX_DATE_MS || !isUuid(userId)) {
    context.addIssue({ code: 'custom', message: 'INVALID_REQUEST' });
    return z.NEVER;
  }
  return { joinedAt: new Date(ms), userId: userId.toLowerCase() };
});

export const memberListQuerySchema = z
  .object({
    limit: integerString('LIMIT_TOO_LARGE', 'INVALID_LIMIT', HISTORY_MAX_LIMIT).optional(),
    // Any UUID a token's `sub` may be (isUuid), not only the versions z.uuid() knows.
    after: z.string({ error: 'INVALID_REQUEST' }).refine(isUuid, { error: 'INVALID_REQUEST' }).optional(),
    cursor: memberCursorSchema.optional(),
  })
  // Two places to start from would be one too many.
  .refine((query) => query.after === undefined || query.cursor === undefined, { error: 'INVALID_REQUEST' });
export type MemberListQuery = z.infer<typeof memberListQuerySchema>;

/**
 * `memberCount`: the whole room's; `hasMore`: another page follows this one; [ext] `nextCursor`:
 * the `cursor` of the next page while `hasMore`, else null.
 */
export const roomMembersSchema = z.object({
  members: z.array(roomMemberSchema),
  memberCount: z.number(),
  hasMore: z.boolean(),
  nextCursor: z.string().nullable(),
});

/** [ext] The change feed (PROTOCOL §16). */
export const CHANGES_DEFAULT_LIMIT = 50;

/**
 * A `changeSeq` cursor (PROTOCOL §16): any non-negative integer in decimal digits, else
 * INVALID_REQUEST. Leading zeros do not count; a value past what a number holds exactly names a
 * point after every change any room will ever have, so it is read as the largest safe integer
 * (an empty page) rather than refused: it is a non-negative integer all the same.
 */
const changeSeqCursor = z
  .string({ error: 'INVALID_REQUEST' })
  .regex(/^\d+$/, { error: 'INVALID_REQUEST' })
  .transform((digits) => {
    const significant = digits.replace(/^0+/, '');
    return significant.length > 15 ? Number.MAX_SAFE_INTEGER : Number(significant);
  });

export const changesQuerySchema = z.object({
  after: changeSeqCursor.optional(),
  limit: integerString('LIMIT_TOO_LARGE', 'INVALID_LIMIT', HISTORY_MAX_LIMIT).optional(),
});
export type ChangesQuery = z.infer<typeof changesQuerySchema>;

/**
 * The changes of a room's feed besides its messages' (stored, deleted), named after the live
 * event that announces each; the database stores them as `room_events` rows of these kinds.
 */
export const ROOM_EVENT_KINDS = [
  'user-joined',
  'user-left',
  'room-expiring',
  'room-expired',
  'room-occupied',
  'room-vacated',
  'room-lifetime-changed',
] as const;

/** Events a change of the feed is announced with; `payload` is that event's payload. */
export const CHANGE_EVENTS = ['new-message', 'message-deleted', ...ROOM_EVENT_KINDS] as const;
export type ChangeEventName = (typeof CHANGE_EVENTS)[number];

export const roomChangeSchema = z.object({
  roomId: z.string(),
  changeSeq: z.number(),
  event: z.enum(CHANGE_EVENTS),
  /**
   * The live event's payload (with `changeSeq`); a deleted message's `new-message` has no content,
   * and a non-member's `user-joined` / `user-left` is an AnonymousMembershipPayload.
   */
  payload: z.record(z.string(), z.unknown()),
});
export type RoomChange = z.infer<typeof roomChangeSchema>;

/**
 * A `user-joined` / `user-left` of the public feed read by someone who is not a member of the
 * room (PROTOCOL §16): who is in a room is for the people in it (§9), so it names nobody; the
 * count and the number stay, and the feed stays gap-free.
 */
export type AnonymousMembershipPayload = Pick<UserJoinedPayload, 'roomId' | 'memberCount' | 'changeSeq'>;

export const changesResponseSchema = z.object({
  changes: z.array(roomChangeSchema),
  hasMore: z.boolean(),
});

/**
 * [ext] The server API (PROTOCOL §17). A message's own fields (`type`, `content`, `imageUrl`)
 * are checked by the same rules as `send-message` (parseMessageBody), so they pass through here.
 */
export const SERVER_BATCH_MAX_ITEMS = 100;

/**
 * The batch route's body limit: 16 KiB per item, room for any valid text item however its JSON
 * is escaped (1000 characters outside the BMP, each written as two `\uXXXX`, are 12,000 bytes).
 * The gateway's 64 KiB for every other body refused a full batch of ordinary messages
 * (100 × 1000 characters) as 413.
 */
export const SERVER_BATCH_MAX_BODY_BYTES = SERVER_BATCH_MAX_ITEMS * 16 * 1024;

export const serverSenderSchema = z.object({
  kind: z.enum(['bot', 'system'], { error: 'INVALID_REQUEST' }),
  /** The backend's name for this sender; the same id is the same sender (and dedupe scope). */
  id: z.string({ error: 'INVALID_REQUEST' }).regex(/^[A-Za-z0-9_.:-]{1,64}$/, { error: 'INVALID_REQUEST' }),
  /** The nickname rules (the dev login's and the handshake's). */
  name: name(NICKNAME_MAX_CHARACTERS, 'INVALID_NICKNAME'),
});
export type ServerSender = z.infer<typeof serverSenderSchema>;

// Checked by send-message's own rules (parseMessageBody), in its order and with its errors;
// the descriptions are what the OpenAPI at /docs shows of them.
const serverMessageFields = {
  sender: serverSenderSchema,
  type: z.unknown().optional().describe('"text" | "image" | "emoji", as in send-message (PROTOCOL §4)'),
  content: z.unknown().optional().describe('text: 1–1000 characters; emoji: emoji only (PROTOCOL §4, §11)'),
  imageUrl: z.unknown().optional().describe('image: an http(s) URL of up to 2048 characters'),
};

export const serverPublishBodySchema = z.object(serverMessageFields);
export type ServerPublishBody = z.infer<typeof serverPublishBodySchema>;

export const serverBatchBodySchema = z.object({
  items: z
    .array(
      z.object({
        roomId: z.string({ error: 'ROOM_ID_REQUIRED' }),
        ...serverMessageFields,
        /** This item's idempotency key (the header's applies to the request as a whole). */
        idempotencyKey: z.string({ error: 'INVALID_CLIENT_MESSAGE_ID' }).optional(),
      }),
      { error: 'INVALID_REQUEST' },
    )
    .min(1, { error: 'INVALID_REQUEST' })
    .max(SERVER_BATCH_MAX_ITEMS, { error: 'INVALID_REQUEST' }),
});
export type ServerBatchBody = z.infer<typeof serverBatchBodySchema>;

const serverMessageSchema = historyMessageSchema.omit({ nickname: true }).extend({
  clientMessageId: z.string().nullable(),
  changeSeq: z.number(),
});

export const serverPublishResponseSchema = z.object({
  /** False when an earlier call with the same Idempotency-Key stored it: this is that message. */
  created: z.boolean(),
  message: serverMessageSchema,
});

export const serverBatchResponseSchema = z.object({
  results: z.array(
    z.union([
      z.object({ ok: z.literal(true), created: z.boolean(), message: serverMessageSchema }),
      z.object({ ok: z.literal(false), error: z.object({ code: z.string(), message: z.string() }) }),
    ]),
  ),
});

export const serverExtendBodySchema = z.object({
  ttlSeconds: z
    .number({ error: 'INVALID_TTL' })
    .int({ error: 'INVALID_TTL' })
    .min(1, { error: 'INVALID_TTL' })
    .max(86_400, { error: 'INVALID_TTL' }),
});

export const serverRoomLifetimeSchema = z.object({ roomId: z.string(), expiresAt: z.string() });
