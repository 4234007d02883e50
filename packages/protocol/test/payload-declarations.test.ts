import { describe, expect, expectTypeOf, it } from 'vitest';
import {
  CLIENT_EVENT_CONTRACTS,
  CLIENT_EVENT_DOCS,
  MESSAGE_TYPES,
  SEND_MESSAGE_CHECKS,
  SERVER_EVENT_DOCS,
  clientEventErrors,
  type ClientEmits,
  type ClientEventName,
  type ErrorCode,
  type ErrorPayload,
  type MessageSender,
  type MessageType,
  type NewMessagePayload,
  type SendMessagePayload,
  type ServerToClientEvents,
  type TypingPayload,
} from '../src/index.ts';

/**
 * The payload declarations are the one place a client event's shape and check order live:
 * the types, the parsing (message-rules.test.ts pins the behaviour) and docs/events.md derive
 * from them.
 */
describe('client payload declarations', () => {
  it('derive the types a client sends (checked by `pnpm typecheck`)', () => {
    expectTypeOf<SendMessagePayload>().toEqualTypeOf<
      | { roomId: string; type: 'text'; content: string; clientMessageId?: string }
      | { roomId: string; type: 'image'; imageUrl: string; clientMessageId?: string }
      | { roomId: string; type: 'emoji'; content: string; clientMessageId?: string }
    >();
    expectTypeOf<TypingPayload>().toEqualTypeOf<{ roomId: string; isTyping: boolean }>();
    expectTypeOf<Parameters<ClientEmits['send-message']>[0]>().toEqualTypeOf<SendMessagePayload>();
  });

  it('declare one variant per message type', () => {
    const union = SEND_MESSAGE_CHECKS.find((check) => check.kind === 'one-of');
    expect(Object.keys(union?.variants ?? {})).toEqual([...MESSAGE_TYPES]);
  });

  it('fix the order of send-message: roomId → room → expiry → membership → type → content → length → …', () => {
    expect(clientEventErrors(CLIENT_EVENT_CONTRACTS['send-message'])).toEqual([
      'ROOM_ID_REQUIRED',
      'ROOM_NOT_FOUND',
      'ROOM_EXPIRED',
      'NOT_A_MEMBER',
      'INVALID_MESSAGE_TYPE',
      'CONTENT_REQUIRED',
      'MESSAGE_TOO_LONG',
      'INVALID_CONTENT',
      'INVALID_IMAGE_URL',
      'INVALID_EMOJI',
      'INVALID_CLIENT_MESSAGE_ID',
      'RATE_LIMITED',
      'UNAVAILABLE',
    ]);
  });

  it('are what the event reference documents', () => {
    expect(CLIENT_EVENT_DOCS['send-message'].payload).toContain('type: "image", imageUrl: string');
    expect(CLIENT_EVENT_DOCS['join-room'].errors).toEqual([
      'ROOM_ID_REQUIRED',
      'ROOM_NOT_FOUND',
      'TOO_MANY_REQUESTS',
      'ROOM_EXPIRED',
      'TOO_MANY_ROOMS',
      'UNAVAILABLE',
    ]);
    expect(CLIENT_EVENT_DOCS.typing.errors).toEqual([]);
  });
});

/** An interface or intersection written out as one object type, for exact type equality. */
type Plain<T> = { [K in keyof T]: T[K] };

describe('server payload declarations', () => {
  it('derive the payload types of ServerToClientEvents (checked by `pnpm typecheck`)', () => {
    expectTypeOf<Plain<NewMessagePayload>>().toEqualTypeOf<{
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
      changeSeq: number;
      sender?: MessageSender;
    }>();
    expectTypeOf<Plain<ErrorPayload>>().toEqualTypeOf<{
      message: string;
      code: ErrorCode;
      event: ClientEventName | (string & {});
      retryAfterMs?: number;
    }>();
    expectTypeOf<Plain<Parameters<ServerToClientEvents['resync']>[0]>>().toEqualTypeOf<{ roomId?: string }>();
    expectTypeOf<Plain<Parameters<ServerToClientEvents['room-lifetime-changed']>[0]>>().toEqualTypeOf<{
      roomId: string;
      expiresAt: string;
      changeSeq: number;
    }>();
    expectTypeOf<Parameters<ServerToClientEvents['token-expired']>[0]>().toEqualTypeOf<Record<string, never>>();
  });

  it('are what the event reference documents', () => {
    expect(SERVER_EVENT_DOCS['room-joined'].payload).toBe("{ roomId: string (UUID), memberCount: integer, lastChangeSeq: integer ([ext] the room's last change number as of the join: every later change has a higher one, §16) }");
    expect(SERVER_EVENT_DOCS.resync.payload).toBe('{ roomId?: string (UUID) }');
    expect(SERVER_EVENT_DOCS['server-draining'].payload).toBe('{}');
    expect(SERVER_EVENT_DOCS['room-lifetime-changed'].payload).toBe(
      '{ roomId: string (UUID), expiresAt: string (ISO-8601), changeSeq: integer ([ext] change feed number) }',
    );
  });
});
