import { CLIENT_EVENTS, SERVER_EVENTS, type ClientEventName } from './events.ts';
import { ERRORS, type ErrorCode } from './errors.ts';

type ServerEventName = (typeof SERVER_EVENTS)[keyof typeof SERVER_EVENTS];

interface EventDoc {
  payload: string;
  description: string;
}
interface ClientEventDoc extends EventDoc {
  ack: string;
  errors: readonly ErrorCode[];
}

/**
 * The realtime half of the API, described next to the code it documents. Typed as complete
 * over CLIENT_EVENTS and SERVER_EVENTS, so a new event cannot be added undocumented;
 * docs/events.md is rendered from it and a test keeps the two identical.
 */
export const CLIENT_EVENT_DOCS: Record<ClientEventName, ClientEventDoc> = {
  'join-room': {
    payload: '{ roomId }',
    ack: '`room-joined` payload',
    errors: ['ROOM_ID_REQUIRED', 'TOO_MANY_REQUESTS', 'ROOM_NOT_FOUND', 'ROOM_EXPIRED', 'UNAVAILABLE'],
    description:
      'Becomes a member (idempotent). Every socket of the user, on every pod, enters the room. The caller gets `room-joined`; others get `user-joined` only if the user is new. [ext] A join from a socket not yet in the room takes one of the user\'s MEMBERSHIP_RATE_LIMIT_PER_MINUTE (60) membership changes, shared with `leave-room` across pods; past it: TOO_MANY_REQUESTS with `retryAfterMs`, and nothing changes.',
  },
  'leave-room': {
    payload: '{ roomId }',
    ack: '`room-left` payload',
    errors: ['ROOM_ID_REQUIRED', 'TOO_MANY_REQUESTS', 'ROOM_NOT_FOUND', 'NOT_A_MEMBER_LEAVE', 'UNAVAILABLE'],
    description:
      'Ends the membership; every socket of the user leaves the room. The caller gets `room-left`, others `user-left`. [ext] Takes one of the user\'s membership changes (see `join-room`); past the budget: TOO_MANY_REQUESTS with `retryAfterMs`, and nothing changes.',
  },
  'send-message': {
    payload:
      '{ roomId, type: "text", content } | { roomId, type: "image", imageUrl } | { roomId, type: "emoji", content }, optional clientMessageId (≤ 64 chars)',
    ack: '`new-message` payload (after COMMIT)',
    errors: [
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
    ],
    description:
      'Stores the message (group commit) and broadcasts `new-message` to the room, sender included. A retry with the same clientMessageId returns the original.',
  },
  typing: {
    payload: '{ roomId, isTyping: boolean }',
    ack: '`{}`',
    errors: [],
    description:
      'Relayed as `typing-indicator` to the other sockets of the room; ignored unless the socket is in the room; throttled per socket.',
  },
};

export const SERVER_EVENT_DOCS: Record<ServerEventName, EventDoc> = {
  'room-joined': {
    payload: '{ roomId, memberCount }',
    description: "To the caller of `join-room`, and to the user's other devices (they were moved into the room too).",
  },
  'user-joined': {
    payload: '{ roomId, userId, nicknameMask, memberCount }',
    description: "To the room, except the joining user's sockets, when a member is added.",
  },
  'room-left': {
    payload: '{ roomId }',
    description: "To the caller of `leave-room`, and to the user's other devices (they left the room too).",
  },
  'user-left': { payload: '{ roomId, userId, memberCount }', description: 'To the room when a member leaves.' },
  'new-message': {
    payload:
      '{ messageId, roomId, userId, nicknameMask, type, content, imageUrl, createdAt, seq, clientMessageId }',
    description: 'To every socket in the room. `seq` is gap-free per room: a jump means fetch `?after=`.',
  },
  'typing-indicator': {
    payload: '{ roomId, userId, nicknameMask, isTyping }',
    description:
      "To the room except the typing user's own sockets; `isTyping: false` is also sent when a typing socket disconnects.",
  },
  'message-deleted': { payload: '{ roomId, messageId }', description: 'To the room after a soft delete.' },
  'room-expired': { payload: '{ roomId }', description: 'To the room when it expires; its sockets then leave it.' },
  'room-expiring': { payload: '{ roomId, expiresAt }', description: 'To the room a few minutes before it expires.' },
  presence: {
    payload: '{ roomId, userId, nicknameMask, online }',
    description: "To each of a user's rooms on their first connection and after their last disconnection.",
  },
  'token-expired': { payload: '{}', description: "When the token's `exp` passes; the socket is then disconnected." },
  'server-draining': {
    payload: '{}',
    description: 'This pod is shutting down; reconnect (the load balancer picks another pod).',
  },
  resync: {
    payload: '{} or { roomId }',
    description:
      'Broadcasts may have been missed: fetch `?after=`. `{}`: this pod lost and regained its Redis subscription, so for every room. ' +
      '`{ roomId }`, for that room only: a pod with a member of that room died (found by the worker), and may have committed a message it never broadcast; ' +
      'or a pod that lost its own connection to Redis broadcast to the room meanwhile, and now has it back.',
  },
  error: {
    payload: '{ message, code, event, retryAfterMs? }',
    description: 'To the caller of a failed event; `message` is the Korean text of the error catalog.',
  },
};

/** docs/events.md, rendered. */
export function renderEventReference(): string {
  const lines: string[] = [
    '# Socket.IO event reference',
    '',
    '<!-- Generated from packages/protocol/src/event-reference.ts by `pnpm docs:events`; do not edit by hand. -->',
    '',
    'Namespace `/socket`, websocket transport. Authenticate with `auth: { token }` (or `?token=`, or an',
    '`Authorization: Bearer` header). Every client event takes an optional acknowledgement callback:',
    '`{ ok: true, data }` or `{ ok: false, error: { message, code } }`. The contract is PROTOCOL.md.',
    'A user may hold up to `MAX_SOCKETS_PER_USER` (32 by default) sockets on one pod; past it the',
    'handshake is refused with `TOO_MANY_REQUESTS` [ext].',
    '',
    'A client must keep reading its socket: a pod closes the connection of one that leaves more',
    'than `SOCKET_MAX_QUEUED_BYTES` (1 MiB by default) unread, as the heartbeat would after 40 s.',
    'Like any dropped connection, it reconnects and fetches `?after=` its last message per room.',
    'A socket\'s events are handled at most 8 at a time, the others in the order they arrived; each',
    'is answered, so a client that sends without waiting for answers only gets them later.',
    '',
    '## Client → server',
    '',
    '| event | payload | ack data | errors | what it does |',
    '|---|---|---|---|---|',
  ];
  for (const name of Object.values(CLIENT_EVENTS)) {
    const doc = CLIENT_EVENT_DOCS[name];
    const errors = doc.errors.map((code) => `\`${code}\``).join(', ') || '—';
    lines.push(`| \`${name}\` | \`${doc.payload}\` | ${doc.ack} | ${errors} | ${doc.description} |`);
  }
  lines.push('', '## Server → client', '', '| event | payload | when |', '|---|---|---|');
  for (const name of Object.values(SERVER_EVENTS)) {
    const doc = SERVER_EVENT_DOCS[name];
    lines.push(`| \`${name}\` | \`${doc.payload}\` | ${doc.description} |`);
  }
  lines.push('', '## Error catalog', '', '| code | HTTP status | message |', '|---|---|---|');
  for (const [code, { status, message }] of Object.entries(ERRORS)) {
    lines.push(`| \`${code}\` | ${status} | ${message} |`);
  }
  return `${lines.join('\n')}\n`;
}
