import type { ErrorCode } from './errors.ts';
import type { ClientEventName } from './events.ts';
import type { MessageType } from './message-rules.ts';

/**
 * Every server event's payload, declared once (docs/PROTOCOL.md §2–§12): the payload types in
 * events.ts are derived from these declarations and docs/events.md shows them, so a field
 * cannot be added to one and forgotten in the other.
 */

/** A field of a server payload: how the docs show it, and (type-level only) its TypeScript type. */
export interface ServerField<T> {
  readonly shape: string;
  readonly optional: boolean;
  readonly type?: T;
}

const shape = <T>(text: string): ServerField<T> & { readonly optional: false } => ({ shape: text, optional: false });
const maybe = <T>(inner: ServerField<T>): ServerField<T> & { readonly optional: true } => ({ shape: inner.shape, optional: true });

const uuid = shape<string>('string (UUID)');
const text = shape<string>('string');
const textOrNull = shape<string | null>('string | null');
const count = shape<number>('integer');
const flag = shape<boolean>('boolean');
const timestamp = shape<string>('string (ISO-8601)');
/** [ext] The change's number in the room's change feed (PROTOCOL §16): per room, gap-free. */
const changeSeq = shape<number>('integer ([ext] change feed number)');

/** Who sent a message, when not a person: a bot or system sender of the server API (§17). */
export interface MessageSender {
  kind: 'bot' | 'system';
  id: string;
  name: string;
}
const sender = maybe(shape<MessageSender>('{ kind: "bot" | "system", id: string, name: string } ([ext], only for server API senders)'));

export type ServerPayloadShape = Readonly<Record<string, ServerField<unknown>>>;

/** The TypeScript type of a declared payload; an empty declaration is the empty object `{}`. */
export type ServerPayloadOf<D extends ServerPayloadShape> = keyof D extends never
  ? Record<string, never>
  : { -readonly [K in keyof D as D[K]['optional'] extends true ? never : K]: D[K] extends ServerField<infer T> ? T : never } & {
      -readonly [K in keyof D as D[K]['optional'] extends true ? K : never]?: D[K] extends ServerField<infer T> ? T : never;
    };

export const SERVER_PAYLOADS = {
  'room-joined': { roomId: uuid, memberCount: count, lastChangeSeq: shape<number>('integer ([ext] the room\'s last change number as of the join: every later change has a higher one, §16)') },
  'user-joined': { roomId: uuid, userId: uuid, nicknameMask: text, memberCount: count, changeSeq },
  'room-left': { roomId: uuid, changeSeq: shape<number>('integer ([ext] the room\'s change number as of which the user is out of it: the leave\'s, or a later one; §3)') },
  'user-left': { roomId: uuid, userId: uuid, memberCount: count, changeSeq },
  'new-message': {
    messageId: uuid,
    roomId: uuid,
    userId: uuid,
    nicknameMask: text,
    type: shape<MessageType>('"text" | "image" | "emoji"'),
    content: textOrNull,
    imageUrl: textOrNull,
    createdAt: timestamp,
    seq: count,
    clientMessageId: textOrNull,
    changeSeq,
    sender,
  },
  'typing-indicator': { roomId: uuid, userId: uuid, nicknameMask: text, isTyping: flag },
  'message-deleted': { roomId: uuid, messageId: uuid, changeSeq },
  'room-expired': { roomId: uuid, changeSeq },
  'room-expiring': { roomId: uuid, expiresAt: timestamp, changeSeq },
  'room-lifetime-changed': { roomId: uuid, expiresAt: timestamp, changeSeq },
  'room-occupied': { roomId: uuid, changeSeq },
  'room-vacated': { roomId: uuid, changeSeq },
  presence: { roomId: uuid, userId: uuid, nicknameMask: text, online: flag },
  'token-expired': {},
  'server-draining': {},
  resync: { roomId: maybe(uuid) },
  error: {
    message: shape<string>('string (Korean, from the error catalog)'),
    code: shape<ErrorCode>('error code'),
    // [ext] The name as sent when the protocol does not name the event (INVALID_REQUEST).
    event: shape<ClientEventName | (string & {})>('client event name'),
    retryAfterMs: maybe(count),
  },
} as const satisfies Record<string, ServerPayloadShape>;

export type ServerEventName = keyof typeof SERVER_PAYLOADS;
export type ServerPayload<E extends ServerEventName> = ServerPayloadOf<(typeof SERVER_PAYLOADS)[E]>;

/** `{ roomId: string (UUID), memberCount: integer }`, or `{}`. */
export function describeServerPayload(event: ServerEventName): string {
  const fields = Object.entries(SERVER_PAYLOADS[event] as ServerPayloadShape).map(
    ([name, field]) => `${name}${field.optional ? '?' : ''}: ${field.shape}`,
  );
  return fields.length === 0 ? '{}' : `{ ${fields.join(', ')} }`;
}
