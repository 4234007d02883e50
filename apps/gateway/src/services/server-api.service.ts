import { createHash } from 'node:crypto';
import { newMessagePayload, type RoomLifetimeRepository, type ServerIdempotencyRepository, type UsersRepository } from '@chat/db';
import {
  AppError,
  CLIENT_MESSAGE_ID,
  ERRORS,
  isUuid,
  nicknameMask,
  parseMessageBody,
  readRoomId,
  type NewMessagePayload,
  type ServerSender,
} from '@chat/protocol';
import type { MessageWriter, WriteOutcome } from '../infrastructure/message-writer.ts';
import { withinDeadline } from '../lib/deadline.ts';
import { uuidv7 } from '../lib/uuidv7.ts';
import type { RoomEvents } from './room-events.ts';
import type { RoomService } from './room.service.ts';

export interface ServerApiDeps {
  users: UsersRepository;
  lifetime: RoomLifetimeRepository;
  idempotency: ServerIdempotencyRepository;
  writer: MessageWriter;
  roomService: RoomService;
  events: RoomEvents;
  /** The longest a call waits for the group commit before answering UNAVAILABLE (0: no bound). */
  writeDeadlineMs: number;
}

/** One message to publish: the room, the sender, the `send-message` fields, and its dedupe key. */
export interface PublishInput {
  /** The id of the API key the call came with: the scope of its Idempotency-Key. */
  apiKeyId: string;
  roomId: unknown;
  sender: ServerSender;
  type?: unknown;
  content?: unknown;
  imageUrl?: unknown;
  /** The Idempotency-Key: a retry by the same API key with the same key stores nothing new. */
  idempotencyKey: string | null;
  /**
   * True when the key was derived from a batch's checked Idempotency-Key (`<key>:<index>`):
   * not held to the 64 characters a sent key has, which `:<index>` may pass (§17).
   */
  keyDerived?: boolean;
}

/** One item of a batch, as its body names it. */
export type BatchItem = Omit<PublishInput, 'apiKeyId' | 'idempotencyKey' | 'keyDerived'> & { idempotencyKey?: string };

export type PublishResult = { created: boolean; message: NewMessagePayload };

/**
 * A bot / system sender's user row id: derived from its kind and id (a UUIDv8 over their
 * SHA-256), so the same sender is one row on every pod without a lookup.
 */
export function senderUserId(sender: Pick<ServerSender, 'kind' | 'id'>): string {
  const bytes = createHash('sha256').update(`${sender.kind}:${sender.id}`).digest().subarray(0, 16);
  bytes[6] = (bytes[6]! & 0x0f) | 0x80;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/**
 * The `clientMessageId` a server API message is stored with: derived from the API key's id and
 * the Idempotency-Key, so keys are scoped per API key while the dedupe stays one probe of
 * messages' (user_id, client_message_id) index, and neither the key id nor the raw key reaches
 * the room's members. 47 characters, within the 64 of any clientMessageId.
 */
export function scopedClientMessageId(apiKeyId: string, idempotencyKey: string): string {
  return `srv_${createHash('sha256').update(`${apiKeyId}\n${idempotencyKey}`).digest('base64url')}`;
}

/** What a key is bound to: the room, the sender and the message, after validation. */
function requestSha256(roomId: string, sender: ServerSender, body: ReturnType<typeof parseMessageBody>): string {
  const request = [roomId, sender.kind, sender.id, sender.name, body.type, body.content, body.imageUrl];
  return createHash('sha256').update(JSON.stringify(request)).digest('hex');
}

/**
 * The server API (PROTOCOL §17): what a trusted backend may do. Publishing goes through the
 * same group commit as a user's send and answers only after COMMIT; it needs no membership and
 * costs no user's rate limit (the API key has its own).
 */
export function createServerApiService(deps: ServerApiDeps) {
  const { writer, roomService, events } = deps;

  /** Checks a message without I/O beyond the room cache: the room, then the send-message rules. */
  async function prepare(input: PublishInput) {
    const roomId = readRoomId({ roomId: input.roomId }).toLowerCase();
    await roomService.requireActiveRoom(roomId);
    const body = parseMessageBody({
      type: input.type,
      content: input.content,
      imageUrl: input.imageUrl,
      // A sent key follows clientMessageId's rules; a derived one was checked as the batch's.
      ...(input.idempotencyKey === null || input.keyDerived ? {} : { clientMessageId: input.idempotencyKey }),
    });
    const author = { nicknameMask: nicknameMask(input.sender.name), sender: input.sender };
    const key = input.idempotencyKey;
    const message = {
      id: uuidv7(),
      roomId,
      userId: senderUserId(input.sender),
      type: body.type,
      content: body.content,
      imageUrl: body.imageUrl,
      clientMessageId: key === null ? null : scopedClientMessageId(input.apiKeyId, key),
      createdAt: new Date(),
      // A bot / system sender is never a member of the room, and needs not be (§17).
      requireMember: false,
    };
    const claim =
      key === null ? null : { apiKeyId: input.apiKeyId, idempotencyKey: key, roomId, requestSha256: requestSha256(roomId, input.sender, body) };
    return { message, author, claim };
  }

  /**
   * Per item, whether its Idempotency-Key (if any) was first used for this very request: a key
   * reused for another sender, room or message is refused rather than stored again or answered
   * with a message that is not what the caller asked for (Stripe's and the IETF draft's rule).
   */
  async function keysMatch(items: readonly Awaited<ReturnType<typeof prepare>>[]): Promise<boolean[]> {
    const claims = items.flatMap((item) => (item.claim === null ? [] : [item.claim]));
    const matches = await deps.idempotency.claim(claims);
    let next = 0;
    return items.map((item) => (item.claim === null ? true : matches[next++]!));
  }

  async function upsertSenders(senders: readonly ServerSender[]) {
    const unique = new Map(senders.map((sender) => [senderUserId(sender), sender]));
    for (const [id, sender] of unique) {
      await deps.users.upsertSender({ id, kind: sender.kind, externalId: sender.id, name: sender.name });
    }
  }

  function settle(outcome: WriteOutcome, author: Parameters<typeof newMessagePayload>[1]): PublishResult {
    switch (outcome.status) {
      case 'stored': {
        const message = newMessagePayload(outcome.message, author);
        events.newMessage(message);
        return { created: true, message };
      }
      case 'duplicate':
        // Stored by an earlier call with this key: answered again, not broadcast again.
        return { created: false, message: newMessagePayload(outcome.message, author) };
      case 'room-expired':
        throw new AppError('ROOM_EXPIRED');
      case 'room-missing':
        throw new AppError('ROOM_NOT_FOUND');
      case 'not-admitted':
        throw new Error('a server API message was not admitted');
      case 'not-member':
        throw new Error('a server API message was refused for membership it does not need');
    }
  }

  const committed = (written: Promise<WriteOutcome>, author: Parameters<typeof newMessagePayload>[1]) =>
    withinDeadline(written, deps.writeDeadlineMs, () => new AppError('UNAVAILABLE'), (late) => {
      // Committed after the caller heard UNAVAILABLE: the room still gets it; a retry with the
      // same Idempotency-Key returns it.
      if (late.status === 'stored') events.newMessage(newMessagePayload(late.message, author));
    });

  return {
    async publish(input: PublishInput): Promise<PublishResult> {
      const prepared = await prepare(input);
      const { message, author } = prepared;
      if (!(await keysMatch([prepared]))[0]) throw new AppError('IDEMPOTENCY_KEY_REUSED');
      await upsertSenders([input.sender]);
      return settle(await committed(writer.write(message), author), author);
    },

    /**
     * Up to 100 messages, each checked on its own; the valid ones are queued together in one
     * tick, so they share one group commit (one transaction). Answers per item, in order. An
     * item without its own `idempotencyKey` takes `<batchKey>:<index>`; the batch's key is
     * checked once, as a sent key (1–64 characters): a bad one refuses the whole request
     * (INVALID_CLIENT_MESSAGE_ID). Derived keys are not held to 64 characters: they were, and
     * a 62-character key had its items from index 10 on refused, the others stored.
     */
    async publishBatch(apiKeyId: string, batchKey: string | null, items: readonly BatchItem[]) {
      if (batchKey !== null) CLIENT_MESSAGE_ID.read(batchKey);
      const inputs = items.map(
        (item, index): PublishInput =>
          item.idempotencyKey !== undefined
            ? { ...item, apiKeyId, idempotencyKey: item.idempotencyKey }
            : { ...item, apiKeyId, idempotencyKey: batchKey === null ? null : `${batchKey}:${index}`, keyDerived: true },
      );
      const checked = await Promise.allSettled(inputs.map((input) => prepare(input)));
      const keysOk = await keysMatch(checked.flatMap((item) => (item.status === 'fulfilled' ? [item.value] : [])));
      let next = 0;
      const prepared = checked.map((item): typeof item => {
        if (item.status === 'rejected' || keysOk[next++]) return item;
        return { status: 'rejected', reason: new AppError('IDEMPOTENCY_KEY_REUSED') };
      });
      await upsertSenders(inputs.filter((_, index) => prepared[index]!.status === 'fulfilled').map((input) => input.sender));
      const valid = prepared.flatMap((item) => (item.status === 'fulfilled' ? [item.value] : []));
      const outcomes = writer.writeMany(valid.map((item) => item.message));
      const byItem = new Map(valid.map((item, index) => [item, committed(outcomes[index]!, item.author)]));
      const written = prepared.map((item) => (item.status === 'fulfilled' ? byItem.get(item.value)! : null));
      return {
        results: await Promise.all(
          prepared.map(async (item, index) => {
            try {
              if (item.status === 'rejected') throw item.reason;
              return { ok: true as const, ...settle(await written[index]!, item.value.author) };
            } catch (error) {
              if (!(error instanceof AppError)) throw error;
              return { ok: false as const, error: { code: error.code, message: ERRORS[error.code].message } };
            }
          }),
        ),
      };
    },

    /** Disconnects every socket of the user, on every pod (they may reconnect with a valid token). */
    disconnectUser(userId: string): { success: true } {
      if (!isUuid(userId)) throw new AppError('INVALID_REQUEST');
      events.disconnectUser(userId.toLowerCase());
      return { success: true };
    },

    async removeMember(roomId: string, userId: string) {
      if (!isUuid(userId)) throw new AppError('INVALID_REQUEST');
      const result = await roomService.removeMember(roomId, userId);
      if (!result.removed) throw new AppError('NOT_A_MEMBER_LEAVE');
      return { success: true as const, changeSeq: result.changeSeq };
    },

    /**
     * Expires the room now: its members hear `room-lifetime-changed` with the new `expiresAt`, then
     * the worker's sweep announces and purges it as for any room.
     */
    async closeRoom(roomId: string) {
      return changeLifetime(roomId, 'now');
    },

    /** The room now expires `ttlSeconds` from now (longer or shorter; never brought back). */
    async extendRoom(roomId: string, ttlSeconds: number) {
      return changeLifetime(roomId, new Date(Date.now() + ttlSeconds * 1000));
    },
  };

  async function changeLifetime(roomId: string, expiresAt: Date | 'now') {
    await roomService.requireRoom(roomId);
    const room = roomId.toLowerCase();
    const change = await deps.lifetime.setExpiry(room, expiresAt);
    if (change.status === 'room-missing') throw new AppError('ROOM_NOT_FOUND');
    if (change.status === 'room-expired') throw new AppError('ROOM_EXPIRED');
    const moved = { roomId: room, expiresAt: change.expiresAt.toISOString() };
    if (change.status === 'changed') roomService.lifetimeChanged({ ...moved, changeSeq: change.changeSeq });
    return moved;
  }
}

export type ServerApiService = ReturnType<typeof createServerApiService>;
