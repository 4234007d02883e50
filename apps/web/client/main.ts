/**
 * The chat page: a window onto the protocol (PROTOCOL.md), served by the gateway at `/`.
 * It talks to its own origin only — REST under /api and Socket.IO on the /socket namespace —
 * so behind a load balancer (or the local cluster's pods) a reconnect may land on any pod.
 */
import { io, type Socket } from 'socket.io-client';
import {
  CHAT_NAMESPACE,
  CLIENT_EVENTS,
  ERRORS,
  SERVER_EVENTS,
  type AckResponse,
  type ClientEmits,
  type NewMessagePayload,
  type RoomJoinedPayload,
  type RoomLeftPayload,
  type ServerToClientEvents,
} from '@chat/protocol';
import { ApiError, createApi, type HistoryMessage, type RoomView } from './api.ts';
import { $, $input, $select, clockTime, el, randomId, safeHttpUrl, timeLeft } from './dom.ts';
import { Timeline, type TimelineMessage } from './timeline.ts';
import './style.css';

type ChatSocket = Socket<ServerToClientEvents, ClientEmits>;

interface Session {
  token: string;
  userId: string;
  nickname: string;
  expiresAt: string;
}

interface OpenRoom {
  roomId: string;
  name: string;
  expiresAt: string;
  memberCount: number;
  expired: boolean;
  timeline: Timeline;
  elements: Map<string, HTMLElement>;
  members: Map<string, { nicknameMask: string; online: boolean }>;
  typing: Map<string, { nicknameMask: string; timer: number }>;
  catchingUp: Promise<void> | null;
  catchUpAgain: boolean;
  loadingOlder: boolean;
}

const SESSION_KEY = 'chat.session';
const ROOM_KEY = 'chat.room';
const ACK_TIMEOUT_MS = 10_000;
/** PROTOCOL §5: `isTyping: false` after 3 s without input. */
const TYPING_IDLE_MS = 3000;
/** A lost `isTyping: false` must not leave someone typing for ever. */
const TYPING_SHOWN_MS = 6000;
const AUTH_CODES = new Set(['AUTH_REQUIRED', 'INVALID_TOKEN', 'TOKEN_EXPIRED']);
const NO_ANSWER = '서버가 응답하지 않습니다. 잠시 후 다시 시도해주세요';

// Per tab (sessionStorage): two tabs of one browser can be two people.
let session: Session | null = loadSession();
let socket: ChatSocket | null = null;
let rooms: RoomView[] = [];
let current: OpenRoom | null = null;
let typingSent = false;
let typingTimer = 0;
let toastTimer = 0;

const api = createApi(location.origin, () => session?.token ?? null);

// ---------------------------------------------------------------------------------------
// Session

function loadSession(): Session | null {
  try {
    const stored = JSON.parse(sessionStorage.getItem(SESSION_KEY) ?? 'null') as Session | null;
    return stored && Date.parse(stored.expiresAt) > Date.now() + 60_000 ? stored : null;
  } catch {
    return null;
  }
}

async function signIn(nickname: string): Promise<void> {
  const login = await api.login(nickname);
  session = { token: login.accessToken, userId: login.userId, nickname: nickname.trim(), expiresAt: login.expiresAt };
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
  startApp();
}

function signOut(message?: string): void {
  const old = socket;
  socket = null;
  old?.disconnect();
  session = null;
  sessionStorage.removeItem(SESSION_KEY);
  sessionStorage.removeItem(ROOM_KEY);
  closeRoom();
  setStatus('offline', '연결 안 됨');
  $('app').hidden = true;
  $('sign-out').hidden = true;
  $('me').textContent = '';
  $('sign-in').hidden = false;
  $input('nickname').focus();
  if (message) toast(message);
}

function startApp(): void {
  if (!session) return;
  $('sign-in').hidden = true;
  $('app').hidden = false;
  $('sign-out').hidden = false;
  $('me').textContent = session.nickname;
  connect(session);
  void refreshRooms();
  const saved = sessionStorage.getItem(ROOM_KEY);
  if (saved) void openRoom(saved);
}

// ---------------------------------------------------------------------------------------
// Socket

function connect(forSession: Session): void {
  setStatus('connecting', '연결 중…');
  const s: ChatSocket = io(`${location.origin}${CHAT_NAMESPACE}`, {
    transports: ['websocket'],
    auth: (cb) => cb({ token: forSession.token }),
    reconnectionDelay: 500,
    reconnectionDelayMax: 3000,
  });
  socket = s;
  let connectedBefore = false;

  s.on('connect', () => {
    setStatus('online', '연결됨');
    // A new connection has told nobody that we are typing: the next keystroke must say so,
    // rather than wait out the idle timer of what was said on the old one.
    clearTimeout(typingTimer);
    typingSent = false;
    // Broadcasts are at-most-once: whatever happened while away comes from the database.
    if (connectedBefore) void resync();
    connectedBefore = true;
  });
  s.on('disconnect', (reason) => {
    if (socket !== s) return;
    setStatus('connecting', '재연결 중…');
    // The server let go of us (a pod draining): Socket.IO does not retry that on its own.
    if (reason === 'io server disconnect') s.connect();
  });
  s.on('connect_error', (error) => {
    if (socket !== s) return;
    const code = (error as Error & { data?: { code?: unknown } }).data?.code;
    if (typeof code === 'string' && AUTH_CODES.has(code)) {
      signOut(error.message);
      return;
    }
    setStatus('connecting', '재연결 중…');
    // A refusal by the server (UNAVAILABLE while its database is away, TOO_MANY_REQUESTS past
    // the sockets per user) is not retried by Socket.IO on its own: try again a little later.
    if (!s.active) setTimeout(() => socket === s && !s.connected && s.connect(), 2000 + Math.random() * 3000);
  });

  s.on(SERVER_EVENTS.newMessage, onNewMessage);
  s.on(SERVER_EVENTS.messageDeleted, ({ roomId, messageId }) => {
    if (current?.roomId === roomId) removeMessage(current, messageId);
  });
  s.on(SERVER_EVENTS.typingIndicator, ({ roomId, userId, nicknameMask, isTyping }) => {
    if (current?.roomId !== roomId || userId === session?.userId) return;
    setTyping(current, userId, nicknameMask, isTyping);
  });
  s.on(SERVER_EVENTS.userJoined, ({ roomId, userId, nicknameMask, memberCount }) => {
    updateRoomListEntry(roomId, { memberCount });
    if (current?.roomId !== roomId) return;
    current.members.set(userId, { nicknameMask, online: true });
    current.memberCount = memberCount;
    renderMembers(current);
    notice(`${nicknameMask} 님이 들어왔습니다`);
  });
  s.on(SERVER_EVENTS.userLeft, ({ roomId, userId, memberCount }) => {
    updateRoomListEntry(roomId, { memberCount });
    if (current?.roomId !== roomId) return;
    const member = current.members.get(userId);
    current.members.delete(userId);
    current.memberCount = memberCount;
    setTyping(current, userId, '', false);
    renderMembers(current);
    notice(`${member?.nicknameMask ?? '누군가'} 님이 나갔습니다`);
  });
  s.on(SERVER_EVENTS.presence, ({ roomId, userId, nicknameMask, online }) => {
    if (current?.roomId !== roomId) return;
    const member = current.members.get(userId);
    if (member) member.online = online;
    else if (online) current.members.set(userId, { nicknameMask, online });
    renderMembers(current);
  });
  s.on(SERVER_EVENTS.roomExpiring, ({ roomId, expiresAt }) => {
    updateRoomListEntry(roomId, { expiresAt });
    if (current?.roomId !== roomId) return;
    current.expiresAt = expiresAt;
    renderRoomHead(current);
  });
  s.on(SERVER_EVENTS.roomExpired, ({ roomId }) => {
    rooms = rooms.filter((room) => room.roomId !== roomId);
    renderRooms();
    if (current?.roomId !== roomId) return;
    current.expired = true;
    renderRoomHead(current);
  });
  // Broadcasts may have been missed: for one room (a pod died mid-send) or all of them.
  s.on(SERVER_EVENTS.resync, ({ roomId }) => {
    if (roomId === undefined) void resync();
    else if (current?.roomId === roomId) void catchUp(current);
  });
  s.on(SERVER_EVENTS.tokenExpired, () => signOut(ERRORS.TOKEN_EXPIRED.message));
  // Every failed event answers with `error` { message, code, event }: the Korean message is shown.
  s.on(SERVER_EVENTS.error, ({ message }) => toast(message));
}

/** After a reconnect: catch up on the open room and refresh what may have changed. */
async function resync(): Promise<void> {
  void refreshRooms();
  const room = current;
  if (!room) return;
  await Promise.all([catchUp(room), reloadMembers(room)]);
}

/** An acknowledged emit; null when the server did not answer in time (already reported). */
async function ask<T>(send: (s: ChatSocket) => Promise<AckResponse<T>>): Promise<AckResponse<T> | null> {
  if (!socket) return null;
  try {
    // A failure answer is also sent as the `error` event, which shows it: nothing to do here.
    return await send(socket.timeout(ACK_TIMEOUT_MS));
  } catch {
    toast(NO_ANSWER);
    return null;
  }
}

// ---------------------------------------------------------------------------------------
// Rooms

async function refreshRooms(): Promise<void> {
  try {
    rooms = (await api.rooms()).rooms;
    renderRooms();
  } catch (error) {
    showError(error);
  }
}

function updateRoomListEntry(roomId: string, change: Partial<Pick<RoomView, 'memberCount' | 'expiresAt'>>): void {
  const room = rooms.find((candidate) => candidate.roomId === roomId);
  if (!room) return;
  Object.assign(room, change);
  renderRooms();
}

function renderRooms(): void {
  $('room-list').replaceChildren(
    ...rooms.map((room) => {
      const button = el(
        'button',
        { className: 'room-item', dataset: { roomId: room.roomId } },
        el('span', { className: 'room-name', text: room.name }),
        el(
          'span',
          { className: 'room-info' },
          document.createTextNode(`${room.memberCount}명 · `),
          el('span', { className: 'time-left', text: timeLeft(room.expiresAt), dataset: { expiresAt: room.expiresAt } }),
        ),
      );
      button.type = 'button';
      button.addEventListener('click', () => void openRoom(room.roomId));
      return el('li', { className: room.roomId === current?.roomId ? 'active' : '' }, button);
    }),
  );
  if (rooms.length === 0) $('room-list').append(el('li', { className: 'muted', text: '열린 방이 없습니다' }));
}

async function createRoom(name: string, ttlSeconds: number | undefined): Promise<void> {
  const created = await api.createRoom(name, ttlSeconds);
  await refreshRooms();
  await openRoom(created.roomId);
}

async function openRoom(roomId: string): Promise<void> {
  if (current?.roomId === roomId) return;
  let info = rooms.find((room) => room.roomId === roomId);
  if (!info) {
    try {
      info = await api.room(roomId);
    } catch (error) {
      sessionStorage.removeItem(ROOM_KEY);
      showError(error);
      return;
    }
  }
  if (info.expired) {
    toast(ERRORS.ROOM_EXPIRED.message);
    return;
  }
  closeRoom();
  const room: OpenRoom = {
    roomId,
    name: info.name,
    expiresAt: info.expiresAt,
    memberCount: info.memberCount,
    expired: false,
    timeline: new Timeline(),
    elements: new Map(),
    members: new Map(),
    typing: new Map(),
    catchingUp: null,
    catchUpAgain: false,
    loadingOlder: false,
  };
  current = room;
  $('room-empty').hidden = true;
  $('room-view').hidden = false;
  renderRoomHead(room);
  renderRooms();

  // Join first, then read: whatever is sent after the join arrives live, the rest is in the page.
  const joined = await ask<RoomJoinedPayload>((s) => s.emitWithAck(CLIENT_EVENTS.joinRoom, { roomId }));
  if (current !== room) return;
  if (!joined?.ok) {
    closeRoom();
    return;
  }
  room.memberCount = joined.data.memberCount;
  sessionStorage.setItem(ROOM_KEY, roomId);
  updateRoomListEntry(roomId, { memberCount: room.memberCount });
  renderRoomHead(room);
  await Promise.all([loadFirstPage(room), reloadMembers(room)]);
  if (current === room) $input('message-input').focus();
}

async function leaveRoom(): Promise<void> {
  const room = current;
  if (!room) return;
  stopTyping();
  const left = await ask<RoomLeftPayload>((s) => s.emitWithAck(CLIENT_EVENTS.leaveRoom, { roomId: room.roomId }));
  if (!left?.ok) return;
  if (current === room) closeRoom();
  sessionStorage.removeItem(ROOM_KEY);
  void refreshRooms();
}

function closeRoom(): void {
  stopTyping();
  if (current) for (const { timer } of current.typing.values()) clearTimeout(timer);
  current = null;
  $('message-list').replaceChildren();
  $('member-list').replaceChildren();
  $('typing').textContent = '';
  $('room-view').hidden = true;
  $('room-empty').hidden = false;
  renderRooms();
}

function renderRoomHead(room: OpenRoom): void {
  $('room-title').textContent = room.name;
  $('member-count').textContent = `${room.memberCount}명`;
  const left = $('room-time-left');
  left.dataset.expiresAt = room.expiresAt;
  left.textContent = timeLeft(room.expiresAt);
  const banner = $('room-banner');
  const remaining = Date.parse(room.expiresAt) - Date.now();
  if (room.expired || remaining <= 0) {
    banner.textContent = ERRORS.ROOM_EXPIRED.message;
    banner.dataset.kind = 'expired';
    banner.hidden = false;
  } else if (remaining <= 5 * 60_000) {
    banner.textContent = `이 방은 ${timeLeft(room.expiresAt)} 후 만료됩니다`;
    banner.dataset.kind = 'expiring';
    banner.hidden = false;
  } else {
    banner.hidden = true;
  }
  const closed = room.expired;
  for (const control of $('composer').querySelectorAll<HTMLInputElement | HTMLButtonElement | HTMLSelectElement>('input, button, select')) {
    control.disabled = closed;
  }
  for (const button of $('emoji-bar').querySelectorAll('button')) button.disabled = closed;
}

async function reloadMembers(room: OpenRoom): Promise<void> {
  try {
    const { members, memberCount } = await api.members(room.roomId);
    if (current !== room) return;
    room.members = new Map(members.map((member) => [member.userId, { nicknameMask: member.nicknameMask, online: member.online }]));
    room.memberCount = memberCount;
    renderMembers(room);
    updateRoomListEntry(room.roomId, { memberCount });
  } catch (error) {
    showError(error);
  }
}

function renderMembers(room: OpenRoom): void {
  $('member-count').textContent = `${room.memberCount}명`;
  const members = [...room.members.entries()].sort(([, a], [, b]) => Number(b.online) - Number(a.online));
  $('member-list').replaceChildren(
    ...members.map(([userId, member]) =>
      el(
        'li',
        { className: member.online ? 'online' : 'offline', dataset: { userId }, title: member.online ? '접속 중' : '오프라인' },
        el('span', { className: 'dot' }),
        document.createTextNode(userId === session?.userId ? `${member.nicknameMask} (나)` : member.nicknameMask),
      ),
    ),
  );
}

// ---------------------------------------------------------------------------------------
// Messages

function fromPayload(message: NewMessagePayload | HistoryMessage): TimelineMessage {
  const { messageId, roomId, seq, userId, nicknameMask, type, content, imageUrl, createdAt } = message;
  return { messageId, roomId, seq, userId, nicknameMask, type, content, imageUrl, createdAt };
}

function onNewMessage(payload: NewMessagePayload): void {
  const room = current;
  if (!room || payload.roomId !== room.roomId) return;
  setTyping(room, payload.userId, payload.nicknameMask, false);
  const { added, gap } = room.timeline.receive(fromPayload(payload));
  if (added) renderMessages(room, [fromPayload(payload)]);
  if (gap) void catchUp(room);
}

async function loadFirstPage(room: OpenRoom): Promise<void> {
  try {
    const page = await api.history(room.roomId, { limit: 50 });
    if (current !== room) return;
    const firstLoad = !room.timeline.loaded;
    renderMessages(room, room.timeline.markComplete(page.messages.map(fromPayload)), 'bottom');
    if (firstLoad) room.timeline.hasOlder = page.hasMore;
    renderOlderButton(room);
    if (room.timeline.aheadOfComplete()) void catchUp(room);
  } catch (error) {
    showError(error);
  }
}

/**
 * Fills what broadcasts missed (a reconnect, or a `seq` gap) with `?after=` pages, oldest
 * first, until the server has no more. One at a time per room; a request while one runs
 * makes it go round once more.
 */
function catchUp(room: OpenRoom): Promise<void> {
  if (room.catchingUp) {
    room.catchUpAgain = true;
    return room.catchingUp;
  }
  room.catchingUp = (async () => {
    do {
      room.catchUpAgain = false;
      const after = room.timeline.completeId;
      if (!room.timeline.loaded || after === null) {
        await loadFirstPage(room);
        continue;
      }
      try {
        let anchor = after;
        for (;;) {
          const page = await api.history(room.roomId, { after: anchor, limit: 100 });
          if (current !== room) return;
          renderMessages(room, room.timeline.markComplete(page.messages.map(fromPayload)));
          const last = page.messages.at(-1);
          if (!page.hasMore || !last) break;
          anchor = last.messageId;
        }
      } catch (error) {
        // Offline again: the next `connect` catches up.
        if (!(error instanceof ApiError && error.status === 0)) showError(error);
        return;
      }
    } while (room.catchUpAgain && current === room);
  })().finally(() => {
    room.catchingUp = null;
  });
  return room.catchingUp;
}

async function loadOlder(room: OpenRoom): Promise<void> {
  const before = room.timeline.oldestId;
  if (room.loadingOlder || !room.timeline.hasOlder || !before) return;
  room.loadingOlder = true;
  try {
    const page = await api.history(room.roomId, { before, limit: 50 });
    if (current !== room) return;
    const box = $('messages');
    const fromBottom = box.scrollHeight - box.scrollTop;
    renderMessages(room, room.timeline.add(page.messages.map(fromPayload)), 'keep');
    box.scrollTop = box.scrollHeight - fromBottom;
    room.timeline.hasOlder = page.hasMore;
  } catch (error) {
    showError(error);
  } finally {
    room.loadingOlder = false;
    renderOlderButton(room);
  }
}

function renderOlderButton(room: OpenRoom): void {
  $('load-older').hidden = !room.timeline.hasOlder;
}

/** Inserts message elements in `seq` order; scrolls down if the reader was at the bottom. */
function renderMessages(room: OpenRoom, messages: readonly TimelineMessage[], scroll: 'auto' | 'bottom' | 'keep' = 'auto'): void {
  if (messages.length === 0 || current !== room) return;
  const box = $('messages');
  const list = $('message-list');
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  for (const message of messages) {
    const element = messageElement(message);
    room.elements.set(message.messageId, element);
    // After the last message with a smaller seq (notices stay where they were).
    let after: Element | null = null;
    for (let node = list.lastElementChild; node; node = node.previousElementSibling) {
      if (node instanceof HTMLElement && node.dataset.seq !== undefined && Number(node.dataset.seq) < message.seq) {
        after = node;
        break;
      }
    }
    if (after) after.after(element);
    else list.prepend(element);
  }
  const mine = messages.some((message) => message.userId === session?.userId);
  if (scroll === 'bottom' || (scroll === 'auto' && (atBottom || mine))) box.scrollTop = box.scrollHeight;
}

function messageElement(message: TimelineMessage): HTMLElement {
  const mine = message.userId === session?.userId;
  const item = el(
    'li',
    { className: `message ${message.type}${mine ? ' mine' : ''}`, dataset: { messageId: message.messageId, seq: String(message.seq) } },
    el(
      'div',
      { className: 'meta' },
      el('span', { className: 'author', text: mine ? `${message.nicknameMask} (나)` : message.nicknameMask }),
      el('time', { text: clockTime(message.createdAt), title: message.createdAt }),
    ),
    messageBody(message),
  );
  if (mine) {
    const remove = el('button', { className: 'delete ghost', text: '삭제', title: '메시지 삭제' });
    remove.type = 'button';
    remove.addEventListener('click', () => void deleteMessage(message.messageId));
    item.querySelector('.meta')?.append(remove);
  }
  return item;
}

function messageBody(message: TimelineMessage): HTMLElement {
  if (message.type === 'image') {
    const url = safeHttpUrl(message.imageUrl);
    if (!url) return el('p', { className: 'body', text: message.imageUrl ?? '' });
    const image = el('img', { className: 'picture' });
    image.alt = '이미지';
    image.loading = 'lazy';
    image.referrerPolicy = 'no-referrer';
    image.src = url;
    const link = el('a', { className: 'body' }, image);
    link.href = url;
    link.target = '_blank';
    link.rel = 'noopener noreferrer';
    return link;
  }
  return el('p', { className: 'body', text: message.content ?? '' });
}

function removeMessage(room: OpenRoom, messageId: string): void {
  room.timeline.remove(messageId);
  room.elements.get(messageId)?.remove();
  room.elements.delete(messageId);
}

async function deleteMessage(messageId: string): Promise<void> {
  try {
    await api.deleteMessage(messageId);
    if (current) removeMessage(current, messageId);
  } catch (error) {
    showError(error);
  }
}

function notice(text: string): void {
  const box = $('messages');
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  $('message-list').append(el('li', { className: 'notice', text }));
  if (atBottom) box.scrollTop = box.scrollHeight;
}

async function send(body: { type: 'text' | 'emoji'; content: string } | { type: 'image'; imageUrl: string }): Promise<boolean> {
  const room = current;
  if (!room) return false;
  stopTyping();
  const clientMessageId = randomId();
  const answer = await ask<NewMessagePayload>((s) =>
    s.emitWithAck(
      CLIENT_EVENTS.sendMessage,
      body.type === 'image'
        ? { roomId: room.roomId, type: 'image', imageUrl: body.imageUrl, clientMessageId }
        : { roomId: room.roomId, type: body.type, content: body.content, clientMessageId },
    ),
  );
  if (!answer?.ok) return false;
  // The ack carries the stored message: show it even if the broadcast is lost.
  if (current === room) {
    const { added, gap } = room.timeline.receive(fromPayload(answer.data));
    if (added) renderMessages(room, [fromPayload(answer.data)]);
    if (gap) void catchUp(room);
  }
  return true;
}

// ---------------------------------------------------------------------------------------
// Typing

function onComposerInput(): void {
  const room = current;
  if (!room || !socket?.connected) return;
  if (!typingSent) {
    typingSent = true;
    socket.emit(CLIENT_EVENTS.typing, { roomId: room.roomId, isTyping: true });
  }
  clearTimeout(typingTimer);
  typingTimer = window.setTimeout(stopTyping, TYPING_IDLE_MS);
}

function stopTyping(): void {
  clearTimeout(typingTimer);
  if (typingSent && current && socket?.connected) {
    socket.emit(CLIENT_EVENTS.typing, { roomId: current.roomId, isTyping: false });
  }
  typingSent = false;
}

function setTyping(room: OpenRoom, userId: string, nicknameMask: string, isTyping: boolean): void {
  const existing = room.typing.get(userId);
  if (existing) clearTimeout(existing.timer);
  if (isTyping) {
    const timer = window.setTimeout(() => setTyping(room, userId, nicknameMask, false), TYPING_SHOWN_MS);
    room.typing.set(userId, { nicknameMask, timer });
  } else {
    room.typing.delete(userId);
  }
  if (current !== room) return;
  const names = [...room.typing.values()].map((entry) => entry.nicknameMask);
  $('typing').textContent = names.length ? `${names.join(', ')} 님이 입력 중…` : '';
}

// ---------------------------------------------------------------------------------------
// Page chrome

function setStatus(state: 'online' | 'connecting' | 'offline', text: string): void {
  const status = $('status');
  status.dataset.state = state;
  status.textContent = text;
}

function toast(message: string): void {
  const box = $('toast');
  box.textContent = message;
  box.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = window.setTimeout(() => {
    box.hidden = true;
  }, 6000);
}

function showError(error: unknown): void {
  toast(error instanceof ApiError ? error.message : ERRORS.INTERNAL.message);
}

/** Time left, every second, wherever it is shown. */
function tick(): void {
  for (const element of document.querySelectorAll<HTMLElement>('[data-expires-at]')) {
    element.textContent = timeLeft(element.dataset.expiresAt ?? '');
  }
  if (current) renderRoomHead(current);
}

function wire(): void {
  $('sign-in-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const button = (event.currentTarget as HTMLFormElement).querySelector('button');
    if (button) button.disabled = true;
    signIn($input('nickname').value)
      .catch(showError)
      .finally(() => {
        if (button) button.disabled = false;
      });
  });
  $('sign-out').addEventListener('click', () => signOut());
  $('create-room').addEventListener('submit', (event) => {
    event.preventDefault();
    const ttl = Number($select('room-ttl').value);
    createRoom($input('room-name').value, ttl > 0 ? ttl : undefined)
      .then(() => {
        $input('room-name').value = '';
      })
      .catch(showError);
  });
  $('refresh-rooms').addEventListener('click', () => void refreshRooms());
  $('leave-room').addEventListener('click', () => void leaveRoom());
  $('load-older').addEventListener('click', () => {
    if (current) void loadOlder(current);
  });
  $('messages').addEventListener('scroll', () => {
    if (current && $('messages').scrollTop < 40) void loadOlder(current);
  });
  const input = $input('message-input');
  input.addEventListener('input', onComposerInput);
  $select('message-type').addEventListener('change', () => {
    input.placeholder = $select('message-type').value === 'image' ? 'https://… 이미지 주소' : '메시지를 입력하세요';
    input.focus();
  });
  $('composer').addEventListener('submit', (event) => {
    event.preventDefault();
    const value = input.value;
    const type = $select('message-type').value;
    const body = type === 'image' ? { type: 'image' as const, imageUrl: value.trim() } : { type: type === 'emoji' ? ('emoji' as const) : ('text' as const), content: value };
    void send(body).then((sent) => {
      if (sent && input.value === value) input.value = '';
    });
  });
  for (const button of $('emoji-bar').querySelectorAll('button')) {
    button.addEventListener('click', () => void send({ type: 'emoji', content: button.textContent ?? '' }));
  }
  setInterval(tick, 1000);
  setInterval(() => {
    if (session) void refreshRooms();
  }, 20_000);
}

wire();
if (session) startApp();
else signOut();
