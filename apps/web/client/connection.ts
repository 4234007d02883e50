import { io } from 'socket.io-client';
import { CHAT_NAMESPACE, SERVER_EVENTS, type RoomExpiringPayload, type RoomLifetimeChangedPayload } from '@chat/protocol';
import { forgetTyping } from './composer.ts';
import { renderMembers, reloadMembers, setTyping } from './members.ts';
import { setStatus, toast } from './notices.ts';
import { refreshRooms, removeFromRoomList, updateRoomListEntry } from './room-list.ts';
import {
  admitLive,
  applyMessageDeleted,
  applyNewMessage,
  applyRoomExpired,
  applyRoomExpiring,
  applyUserJoined,
  applyUserLeft,
  catchUp,
} from './room-changes.ts';
import { leftBeforeJoin } from './change-feed.ts';
import { refusedRetryDelayMs } from './refused-retry.ts';
import { roomLeft, showLeft, showRejoined } from './room-view.ts';
import type { ChatSocket, Page, Session } from './store.ts';

/**
 * The Socket.IO connection on the page's own origin (so behind a load balancer a reconnect
 * may land on any pod): its lifecycle, refused handshakes, and catching up after a reconnect.
 */

const AUTH_CODES = new Set(['AUTH_REQUIRED', 'INVALID_TOKEN']);

/** What ends the session: the server refused its token (`message`, the protocol's), or the token expired. */
export interface SessionEnd {
  refused(message: string): void;
  expired(): void;
}
const LIVE = { live: true };

/** `end` is told when the server will not take this session any more. */
export function connect(page: Page, session: Session, end: SessionEnd): void {
  const { store } = page;
  setStatus('connecting', '연결 중…');
  const s: ChatSocket = io(`${location.origin}${CHAT_NAMESPACE}`, {
    transports: ['websocket'],
    auth: (cb) => cb({ token: session.token }),
    reconnectionDelay: 500,
    reconnectionDelayMax: 3000,
  });
  store.setSocket(s);
  const mine = () => store.state.socket === s;
  let connectedBefore = false;

  s.on('connect', () => {
    if (!mine()) return;
    setStatus('online', '연결됨');
    forgetTyping(page);
    // Sends cut off by the disconnect go again, each with its clientMessageId (PROTOCOL §14).
    page.sends.connected();
    // Broadcasts are at-most-once: whatever happened while away comes from the database.
    if (connectedBefore) void resync(page);
    connectedBefore = true;
  });
  s.on('disconnect', (reason) => {
    if (!mine()) return;
    setStatus('connecting', '재연결 중…');
    // The server let go of us (a pod draining): Socket.IO does not retry that on its own.
    if (reason === 'io server disconnect') s.connect();
  });
  s.on('connect_error', (error) => {
    if (!mine()) return;
    const data = (error as Error & { data?: { code?: unknown } }).data;
    const code = data?.code;
    // An expired token is refused with the message of an invalid one (PROTOCOL §1): the page
    // says what happened instead.
    if (code === 'TOKEN_EXPIRED') {
      end.expired();
      return;
    }
    if (typeof code === 'string' && AUTH_CODES.has(code)) {
      end.refused(error.message);
      return;
    }
    setStatus('connecting', '재연결 중…');
    // A refusal by the server (UNAVAILABLE while its database is away, TOO_MANY_REQUESTS past
    // the sockets or handshakes per user) is not retried by Socket.IO on its own: try again
    // later, not before the server's `retryAfterMs` when it gave one.
    if (!s.active) {
      setTimeout(() => mine() && !s.connected && s.connect(), refusedRetryDelayMs(data, Math.random()));
    }
  });

  // Changes of a room (PROTOCOL §16): the room list follows them for any room, the open room
  // applies each once, in `changeSeq` order, catching up when numbers were skipped.
  const changeOf = (roomId: string, changeSeq: number) => {
    const room = store.currentIf(roomId);
    return room && admitLive(page, room, changeSeq) ? room : null;
  };
  s.on(SERVER_EVENTS.newMessage, (payload) => {
    const room = changeOf(payload.roomId, payload.changeSeq);
    if (room) applyNewMessage(page, room, payload, LIVE);
  });
  s.on(SERVER_EVENTS.messageDeleted, ({ roomId, messageId, changeSeq }) => {
    const room = changeOf(roomId, changeSeq);
    if (room) applyMessageDeleted(page, room, messageId);
  });
  s.on(SERVER_EVENTS.typingIndicator, ({ roomId, userId, nicknameMask, isTyping }) => {
    const room = store.currentIf(roomId);
    if (!room || userId === store.state.session?.userId) return;
    setTyping(page, room, userId, nicknameMask, isTyping);
  });
  s.on(SERVER_EVENTS.userJoined, (payload) => {
    updateRoomListEntry(page, payload.roomId, { memberCount: payload.memberCount });
    const room = changeOf(payload.roomId, payload.changeSeq);
    if (room) applyUserJoined(page, room, payload, LIVE);
  });
  s.on(SERVER_EVENTS.userLeft, (payload) => {
    updateRoomListEntry(page, payload.roomId, { memberCount: payload.memberCount });
    const room = changeOf(payload.roomId, payload.changeSeq);
    if (room) applyUserLeft(page, room, payload, LIVE);
  });
  // The user left the room on another device, or a backend removed them (PROTOCOL §3, §17):
  // the socket is out of the room, so nothing more of it comes and sends would be refused.
  s.on(SERVER_EVENTS.roomLeft, ({ roomId, changeSeq }) => {
    const room = store.currentIf(roomId);
    if (room && !leftBeforeJoin(room.joinedChangeSeq, changeSeq)) roomLeft(page, room);
  });
  // The user joined the room shown left again on another device: this socket was moved in with
  // it (PROTOCOL §2) and hears the room again, unaware of what happened while it was out. (This
  // page's own joins open a fresh room, never shown left: their `room-joined` is nothing here.)
  s.on(SERVER_EVENTS.roomJoined, ({ roomId, memberCount }) => {
    const room = store.currentIf(roomId);
    if (!room?.left) return;
    showRejoined(page, room, memberCount);
    void resync(page);
  });
  s.on(SERVER_EVENTS.presence, ({ roomId, userId, nicknameMask, online }) => {
    const room = store.currentIf(roomId);
    if (!room) return;
    store.memberPresence(room, userId, nicknameMask, online);
    renderMembers(page, room);
  });
  // room-expiring, and room-lifetime-changed (the server API extended or closed the room): the
  // countdown follows the time they carry.
  const expiryMoved = ({ roomId, expiresAt, changeSeq }: RoomExpiringPayload | RoomLifetimeChangedPayload) => {
    updateRoomListEntry(page, roomId, { expiresAt });
    const room = changeOf(roomId, changeSeq);
    if (room) applyRoomExpiring(page, room, expiresAt);
  };
  s.on(SERVER_EVENTS.roomExpiring, expiryMoved);
  s.on(SERVER_EVENTS.roomLifetimeChanged, expiryMoved);
  s.on(SERVER_EVENTS.roomExpired, ({ roomId, changeSeq }) => {
    removeFromRoomList(page, roomId);
    const room = changeOf(roomId, changeSeq);
    if (room) applyRoomExpired(page, room);
  });
  // Nothing to show, but they are changes: they keep the count of what was applied.
  s.on(SERVER_EVENTS.roomOccupied, ({ roomId, changeSeq }) => void changeOf(roomId, changeSeq));
  s.on(SERVER_EVENTS.roomVacated, ({ roomId, changeSeq }) => void changeOf(roomId, changeSeq));
  // Broadcasts may have been missed: for one room (a pod died mid-send) or all of them.
  s.on(SERVER_EVENTS.resync, ({ roomId }) => {
    if (roomId === undefined) {
      void resync(page);
      return;
    }
    const room = store.currentIf(roomId);
    if (room && !room.left) void catchUp(page, room);
  });
  s.on(SERVER_EVENTS.tokenExpired, () => end.expired());
  // Every failed event answers with `error` { message, code, event }: the Korean message is shown.
  s.on(SERVER_EVENTS.error, ({ message }) => toast(page, message));
}

/** Drops the connection for good (signing out): its events are ignored from here on. */
export function disconnect(page: Page): void {
  const old = page.store.state.socket;
  page.store.setSocket(null);
  old?.disconnect();
}

/** After a reconnect: catch up on the open room and refresh what may have changed. */
async function resync(page: Page): Promise<void> {
  void refreshRooms(page);
  const room = page.store.state.current;
  // A room whose join is not answered yet is read once it is (room-view.ts asks again after a blip).
  if (!room || room.left || room.joinedChangeSeq === null) return;
  // Members first: the changes after the cursor then replay joins and leaves over that list
  // in order, so a snapshot older than the feed's last change cannot win.
  if ((await reloadMembers(page, room)) === 'not-member') {
    // Left or removed while this page was away: the `room-left` went to a socket it no longer has.
    showLeft(page, room);
    return;
  }
  await catchUp(page, room);
}
