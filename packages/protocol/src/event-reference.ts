import { CLIENT_EVENT_CONTRACTS, clientEventErrors } from './client-payloads.ts';
import { CLIENT_EVENTS, SERVER_EVENTS, type ClientEventName } from './events.ts';
import { ERRORS, type ErrorCode } from './errors.ts';
import { describeChecks, describePayload } from './payload-contract.ts';
import { describeServerPayload, type ServerEventName } from './server-payloads.ts';

interface EventDoc {
  payload: string;
  description: string;
}
interface ClientEventDoc extends EventDoc {
  ack: string;
  errors: readonly ErrorCode[];
}

/**
 * The realtime half of the API. The client events' rows come from their declarations
 * (client-payloads.ts); the server events are described here, typed as complete over
 * SERVER_EVENTS so a new event cannot be added undocumented. docs/events.md is rendered from
 * both and a test keeps it identical.
 */
export const CLIENT_EVENT_DOCS: Record<ClientEventName, ClientEventDoc> = Object.fromEntries(
  Object.values(CLIENT_EVENTS).map((name) => {
    const contract = CLIENT_EVENT_CONTRACTS[name];
    const doc: ClientEventDoc = {
      payload: describePayload(contract.checks),
      ack: contract.ack,
      errors: clientEventErrors(contract),
      description: contract.description,
    };
    return [name, doc];
  }),
) as Record<ClientEventName, ClientEventDoc>;

/** When each server event is sent; its payload comes from server-payloads.ts. */
const SERVER_EVENT_WHEN: Record<ServerEventName, string> = {
  'room-joined': "To the caller of `join-room`, and to the user's other devices (they were moved into the room too).",
  'user-joined': "To the room, except the joining user's sockets, when a member is added.",
  'room-left': "To the caller of `leave-room`, and to the user's other devices (they left the room too).",
  'user-left': 'To the room when a member leaves.',
  'new-message': 'To every socket in the room. `seq` is gap-free per room: a jump means fetch `?after=`.',
  'typing-indicator': "To the room except the typing user's own sockets; `isTyping: false` is also sent when a typing socket disconnects.",
  'message-deleted': 'To the room after a soft delete.',
  'room-expired': 'To the room when it expires; its sockets then leave it.',
  'room-expiring': 'To the room a few minutes before it expires.',
  'room-lifetime-changed':
    "[ext] To the room when the server API moved its expiry (extend, or close: `expiresAt` is then now, and `room-expired` follows from the worker). A change of the feed; a countdown follows `expiresAt`.",
  'room-occupied':
    '[ext] To the room when its first member comes online (a few seconds after, so a reconnect does not flap). A change of the feed, like the other `changeSeq` events.',
  'room-vacated': '[ext] To the room when its last online member went offline, a few seconds after. A change of the feed.',
  presence: "To each of a user's rooms on their first connection and after their last disconnection.",
  'token-expired': "When the token's `exp` passes; the socket is then disconnected, once the events it sent before are answered (an event it sends from `exp` on is refused TOKEN_EXPIRED).",
  'server-draining': 'This pod is shutting down; reconnect (the load balancer picks another pod).',
  resync:
    'Broadcasts may have been missed: fetch `?after=`. `{}`: this pod lost and regained its subscription to the bus channel of membership moves, so for every room. ' +
    '`{ roomId }`, for that room only: a pod with a member of that room died (found by the worker), and may have committed a message it never broadcast; ' +
    'or a pod that could not publish to the bus broadcast to the room meanwhile, and now can; ' +
    "or this pod subscribed to the room's bus channel after the socket was put into the room (a join on another device, mirrored here), or lost that subscription and has it again.",
  error: 'To the caller of a failed event; `message` is the Korean text of the error catalog.',
};

export const SERVER_EVENT_DOCS: Record<ServerEventName, EventDoc> = Object.fromEntries(
  Object.values(SERVER_EVENTS).map((name) => [name, { payload: describeServerPayload(name), description: SERVER_EVENT_WHEN[name] }]),
) as Record<ServerEventName, EventDoc>;

/** docs/events.md, rendered. */
export function renderEventReference(): string {
  const lines: string[] = [
    '# Socket.IO event reference',
    '',
    '<!-- Generated from packages/protocol (client-payloads.ts, event-reference.ts) by `pnpm docs:events`; do not edit by hand. -->',
    '',
    'Namespace `/socket`, websocket transport. Authenticate with `auth: { token }` (or `?token=`, or an',
    '`Authorization: Bearer` header). Every client event takes an optional acknowledgement callback:',
    '`{ ok: true, data }` or `{ ok: false, error: { message, code } }`. The contract is docs/PROTOCOL.md.',
    'A user may hold up to `MAX_SOCKETS_PER_USER` (32 by default) sockets across the cluster, and make',
    'up to `HANDSHAKE_RATE_LIMIT_PER_MINUTE` (120 by default) handshakes a minute; past either the',
    'handshake is refused with `TOO_MANY_REQUESTS` [ext] (the second with `retryAfterMs`).',
    '',
    'A client must keep reading its socket: a pod closes the connection of one that leaves more',
    'than `SOCKET_MAX_QUEUED_BYTES` (1 MiB by default) unread, as the heartbeat would after 40 s.',
    'Like any dropped connection, it reconnects and fetches `?after=` its last message per room.',
    'A socket\'s events are handled at most 8 at a time, the others in the order they arrived; each',
    'is answered, so a client that sends without waiting for answers only gets them later.',
    '[ext] Events refused after a lookup (ROOM_NOT_FOUND, ROOM_EXPIRED, NOT_A_MEMBER, NOT_A_MEMBER_LEAVE)',
    'cost one of the user\'s `FAILED_EVENT_LIMIT_PER_MINUTE` (60 by default), shared by all pods; once',
    'they are spent, every event of the user, `typing` included, is refused with `TOO_MANY_REQUESTS`',
    'and `retryAfterMs` before any check of the tables below, until the minute is over.',
    '[ext] An event not in the table below (`delete-message`: deleting is REST) is refused with',
    '`INVALID_REQUEST`, `error.event` being the name as sent.',
    '[ext] From the token\'s `exp` on, every event is refused with `TOKEN_EXPIRED` (`유효하지 않은 토큰입니다`)',
    'until the socket is closed (`token-expired`).',
    '',
    '## Client → server',
    '',
    '| event | payload | ack data | checks, in order (errors) | what it does |',
    '|---|---|---|---|---|',
  ];
  for (const name of Object.values(CLIENT_EVENTS)) {
    const doc = CLIENT_EVENT_DOCS[name];
    const contract = CLIENT_EVENT_CONTRACTS[name];
    const checks = contract.dropsMalformed
      ? 'malformed → dropped, answered `{}`; failed events spent (above): TOO_MANY_REQUESTS'
      : `${describeChecks(contract.checks)}; any step: UNAVAILABLE`;
    lines.push(`| \`${name}\` | \`${doc.payload.replaceAll('|', '\\|')}\` | ${doc.ack} | ${checks} | ${doc.description} |`);
  }
  lines.push('', '## Server → client', '', '| event | payload | when |', '|---|---|---|');
  for (const name of Object.values(SERVER_EVENTS)) {
    const doc = SERVER_EVENT_DOCS[name];
    lines.push(`| \`${name}\` | \`${doc.payload.replaceAll('|', '\\|')}\` | ${doc.description} |`);
  }
  lines.push('', '## Error catalog', '', '| code | HTTP status | message |', '|---|---|---|');
  for (const [code, { status, message }] of Object.entries(ERRORS)) {
    lines.push(`| \`${code}\` | ${status} | ${message} |`);
  }
  return `${lines.join('\n')}\n`;
}
