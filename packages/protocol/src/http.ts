import { z } from 'zod';
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
const integerString = (tooLarge: 'LIMIT_TOO_LARGE', invalid: 'INVALID_LIMIT', max: number) =>
  z
    .string({ error: invalid })
    .regex(/^\d{1,9}$/, { error: invalid })
    .transform(Number)
    .pipe(z.number().int().min(1, { error: invalid }).max(max, { error: tooLarge }));

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

export const memberListQuerySchema = z.object({
  limit: integerString('LIMIT_TOO_LARGE', 'INVALID_LIMIT', HISTORY_MAX_LIMIT).optional(),
  // Any UUID a token's `sub` may be (isUuid), not only the versions z.uuid() knows.
  after: z.string({ error: 'INVALID_REQUEST' }).refine(isUuid, { error: 'INVALID_REQUEST' }).optional(),
});
export type MemberListQuery = z.infer<typeof memberListQuerySchema>;

/** `memberCount`: the whole room's; `hasMore`: another page follows this one. */
export const roomMembersSchema = z.object({
  members: z.array(roomMemberSchema),
  memberCount: z.number(),
  hasMore: z.boolean(),
});
