import { historySender, newMessagePayload, type MessagesRepository, type NewMessage, type StoredMessage } from '@chat/db';
import {
  AppError,
  HISTORY_DEFAULT_LIMIT,
  isUuid,
  nicknameMask,
  parseMessageBody,
  readRoomId,
  type HistoryMessage,
  type HistoryQuery,
} from '@chat/protocol';
import { withinDeadline } from '../lib/deadline.ts';
import type { MessageWriter, WriteOutcome } from '../infrastructure/message-writer.ts';
import type { RoomEvents } from './room-events.ts';
import type { RoomService } from './room.service.ts';
import type { SendRateLimiter, SendUnit } from '../infrastructure/leased-rate-limiter.ts';
import type { AuthenticatedUser } from './user-auth.service.ts';
import { uuidv7 } from '../lib/uuidv7.ts';

/**
 * How the caller knows the sender's membership without a query: a socket is in `room:<id>` when
 * its user is a member (see docs/ARCHITECTURE.md). Only a pre-check: a leave made on another pod
 * moves the socket out through the bus a moment after the leave is answered, so a socket may
 * still be in the room of a user who has left it. The group commit's statement checks
 * membership in the database for every user's message (`requireMember`).
 */
export interface MembershipHint {
  isInRoom(roomId: string): boolean;
  /** Called when the database says "member" but the socket was not in the room yet. */
  enterRoom(roomId: string): void;
}

export interface MessageServiceDeps {
  messages: MessagesRepository;
  writer: MessageWriter;
  roomService: RoomService;
  rateLimiter: SendRateLimiter;
  events: RoomEvents;
  isMember(roomId: string, userId: string): Promise<boolean>;
  /** The longest a sender waits for the group commit before hearing UNAVAILABLE (0: no bound). */
  writeDeadlineMs?: number;
  /** Fault suite only (fault-hooks.ts): runs after COMMIT, before the ack and the broadcast. */
  afterCommit?: () => void;
}

const toNewMessagePayload = (message: StoredMessage, mask: string) => newMessagePayload(message, { nicknameMask: mask });

export function createMessageService(deps: MessageServiceDeps) {
  const { messages, writer, roomService, rateLimiter, events } = deps;

  /**
   * Undefined when the socket is in the room (most sends: no promise), else the lookup. A send
   * that passes is checked again by the batch statement (`requireMember`), which is what decides.
   */
  function requireMembership(sender: AuthenticatedUser, roomId: string, hint: MembershipHint): Promise<void> | undefined {
    if (hint.isInRoom(roomId)) return undefined;
    return lookUpMembership(sender, roomId, hint);
  }

  async function lookUpMembership(sender: AuthenticatedUser, roomId: string, hint: MembershipHint) {
    // Slow path only: the membership may have been added on another pod a moment ago.
    if (!(await deps.isMember(roomId, sender.id))) throw new AppError('NOT_A_MEMBER');
    hint.enterRoom(roomId);
  }

  /**
   * The unit the send spent, or, for a limited sender retrying a message that is already
   * stored, that message: it gets it back, not an error.
   */
  async function consumeOrFindRetry(sender: AuthenticatedUser, clientMessageId: string | null): Promise<{ unit: SendUnit } | { retried: StoredMessage }> {
    try {
      return { unit: await rateLimiter.consume(sender.id) };
    } catch (error) {
      if (error instanceof AppError && error.code === 'RATE_LIMITED' && clientMessageId) {
        const original = await messages.findByClientMessageId(sender.id, clientMessageId);
        if (original) return { retried: original };
      }
      throw error;
    }
  }

  return {
    /**
     * PROTOCOL §4, in the order of §6: roomId → room → expiry → membership → type → content →
     * length; then the rate limit, then the group-committed write and the broadcast.
     */
    async send(sender: AuthenticatedUser, payload: unknown, hint: MembershipHint) {
      const roomId = readRoomId(payload);
      // The common case (room cached, socket in the room, a rate-limit unit held by this pod)
      // is decided synchronously: no promise and no microtask turn per check.
      if (!roomService.cachedActiveRoom(roomId)) await roomService.requireActiveRoom(roomId);
      const membership = requireMembership(sender, roomId, hint);
      if (membership) await membership;
      const body = parseMessageBody(payload);
      const message: NewMessage = {
        id: uuidv7(),
        roomId,
        userId: sender.id,
        type: body.type,
        content: body.content,
        imageUrl: body.imageUrl,
        clientMessageId: body.clientMessageId,
        createdAt: new Date(),
        requireMember: true,
      };

      let written: Promise<WriteOutcome>;
      // The unit the send spent: a refund gives it back to the window it came from.
      let unit = rateLimiter.tryConsumeLeased(sender.id);
      if (unit !== null) written = writer.write(message);
      else {
        // The rate-limit check and the queued write start together: the writer holds the
        // message until the check settles and drops it unless admitted, so under load the Redis
        // round trip overlaps the transaction in flight instead of adding to it.
        const admission = consumeOrFindRetry(sender, body.clientMessageId);
        written = writer.write(message, admission.then((admitted) => 'unit' in admitted));
        const admitted = await admission;
        if ('retried' in admitted) return toNewMessagePayload(admitted.retried, sender.nicknameMask);
        unit = admitted.unit;
      }
      const spent = unit;

      // statement_timeout and lock_timeout are enforced by the server, so a server that is frozen
      // (SIGSTOP, a stalled disk, a path that drops packets without a RST) never sends them, and
      // postgres.js has no query timeout of its own: without this bound a send would hang for as
      // long as the freeze. Past it the sender hears UNAVAILABLE, but the batch may still commit;
      // a message that did get stored is then still broadcast (a retry with the same
      // clientMessageId returns it without broadcasting again).
      const outcome = await withinDeadline(written, deps.writeDeadlineMs ?? 0, () => new AppError('UNAVAILABLE'), (late) => {
        // Committed after the sender heard UNAVAILABLE: the room still gets it.
        if (late.status === 'stored') events.newMessage(toNewMessagePayload(late.message, sender.nicknameMask));
      })
        .catch(async (error: unknown) => {
          // Nothing was stored: the client's retry should not be charged twice.
          await rateLimiter.refund(sender.id, spent);
          throw error;
        });
      deps.afterCommit?.();
      switch (outcome.status) {
        case 'stored': {
          const stored = toNewMessagePayload(outcome.message, sender.nicknameMask);
          events.newMessage(stored);
          return stored;
        }
        case 'duplicate':
          // Stored before: nothing new was written, so it costs the sender nothing either.
          await rateLimiter.refund(sender.id, spent);
          return toNewMessagePayload(outcome.message, sender.nicknameMask);
        case 'room-expired':
          throw new AppError('ROOM_EXPIRED');
        case 'room-missing':
          throw new AppError('ROOM_NOT_FOUND');
        case 'not-member':
          // The socket was still in the room, but its user had left it (a leave on another pod
          // whose move of this socket had not arrived yet): nothing was written, nothing is
          // broadcast, and the send costs no rate-limit unit.
          await rateLimiter.refund(sender.id, spent);
          throw new AppError('NOT_A_MEMBER');
        case 'not-admitted':
          // Admission was settled true above; a writer that says otherwise is a bug.
          throw new Error('an admitted message was not written');
      }
    },

    /** PROTOCOL §7 with the [ext] `after`: newest first, or oldest first after a message. */
    async history(roomId: string, query: HistoryQuery) {
      await roomService.requireActiveRoom(roomId);
      const room = roomId.toLowerCase();
      const limit = query.limit ?? HISTORY_DEFAULT_LIMIT;
      // A cursor that is not a message id names no message: it is not looked up. `before` is
      // answered for first, so a malformed `after` is reported only once `before` is found.
      if (query.before !== undefined && !isUuid(query.before)) throw new AppError('BEFORE_NOT_FOUND');
      const afterMalformed = query.after !== undefined && !isUuid(query.after);
      if (afterMalformed && query.before === undefined) throw new AppError('AFTER_NOT_FOUND');
      const { rows, missingAnchor } = await messages.page(room, {
        beforeId: query.before?.toLowerCase() ?? null,
        afterId: query.after === undefined || afterMalformed ? null : query.after.toLowerCase(),
        order: query.after !== undefined ? 'oldest' : 'newest',
        limit: limit + 1,
      });
      if (missingAnchor === 'before') throw new AppError('BEFORE_NOT_FOUND');
      if (missingAnchor === 'after' || afterMalformed) throw new AppError('AFTER_NOT_FOUND');
      const page: HistoryMessage[] = rows.slice(0, limit).map((row) => ({
        messageId: row.id,
        roomId: row.roomId,
        seq: row.seq,
        userId: row.userId,
        nickname: row.nickname,
        nicknameMask: nicknameMask(row.nickname),
        type: row.type,
        content: row.content,
        imageUrl: row.imageUrl,
        createdAt: row.createdAt.toISOString(),
        ...historySender(row),
      }));
      return { messages: page, hasMore: rows.length > limit };
    },

    /** PROTOCOL §8: soft delete by the author, announced to the room. */
    async deleteOwn(userId: string, messageId: string) {
      const message = isUuid(messageId) ? await messages.find(messageId.toLowerCase()) : null;
      if (!message || message.isDeleted || message.roomExpiresAt.getTime() <= Date.now()) {
        throw new AppError('MESSAGE_NOT_FOUND');
      }
      if (message.userId !== userId) throw new AppError('NOT_MESSAGE_OWNER');
      const deleted = await messages.softDelete(message.id, userId);
      if (!deleted) throw new AppError('MESSAGE_NOT_FOUND');
      events.messageDeleted({ roomId: message.roomId, messageId: message.id, changeSeq: deleted.changeSeq });
      return { success: true as const };
    },
  };

}

export type MessageService = ReturnType<typeof createMessageService>;
