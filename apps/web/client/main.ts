/**
 * The chat page: a window onto the protocol (docs/PROTOCOL.md), served by the gateway at `/`.
 * It talks to its own origin only — REST under /api and Socket.IO on the /socket namespace —
 * so behind a load balancer (or the local cluster's pods) a reconnect may land on any pod.
 *
 * This file only wires: the store (the page's one mutable state) and the API go to every
 * module, and the page's controls to the module that handles them.
 */
import { createApi } from './api.ts';
import { createSendQueue, onComposerInput, send, type OutgoingMessage } from './composer.ts';
import { $, $input, $select } from './dom.ts';
import { showError } from './notices.ts';
import { OutageNotice } from './outage.ts';
import { catchUp } from './room-changes.ts';
import { loadMoreRooms, onRoomPicked, refreshRooms } from './room-list.ts';
import { createRoom, leaveRoom, openRoom, showLeft, tick } from './room-view.ts';
import { loadSession } from './saved-session.ts';
import { renderSessionExpiry, signIn, signOut, start } from './session.ts';
import { createStore, type Page } from './store.ts';
import { loadOlder } from './timeline-view.ts';
import './style.css';

const ROOM_LIST_REFRESH_MS = 20_000;

const store = createStore(loadSession());
const page: Page = {
  store,
  api: createApi(
    location.origin,
    () => store.state.session?.token ?? null,
    (offsetMs) => store.setClockOffset(offsetMs),
  ),
  sends: createSendQueue(() => store.state.socket),
  roomListOutage: new OutageNotice(),
};

$('sign-in-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const button = (event.currentTarget as HTMLFormElement).querySelector('button');
  if (button) button.disabled = true;
  signIn(page, $input('nickname').value)
    .catch((error: unknown) => showError(page, error))
    .finally(() => {
      if (button) button.disabled = false;
    });
});
$('sign-out').addEventListener('click', () => signOut(page));

$('create-room').addEventListener('submit', (event) => {
  event.preventDefault();
  const ttl = Number($select('room-ttl').value);
  createRoom(page, $input('room-name').value, ttl > 0 ? ttl : undefined)
    .then(() => {
      $input('room-name').value = '';
    })
    .catch((error: unknown) => showError(page, error));
});
$('refresh-rooms').addEventListener('click', () => void refreshRooms(page));
$('more-rooms').addEventListener('click', () => void loadMoreRooms(page));
onRoomPicked((roomId) => void openRoom(page, roomId));
$('leave-room').addEventListener('click', () => void leaveRoom(page));

$('load-older').addEventListener('click', () => {
  if (store.state.current) void loadOlder(page, store.state.current);
});
$('messages').addEventListener('scroll', () => {
  if (store.state.current && $('messages').scrollTop < 40) void loadOlder(page, store.state.current);
});

const input = $input('message-input');
input.addEventListener('input', () => onComposerInput(page));
$select('message-type').addEventListener('change', () => {
  input.placeholder = $select('message-type').value === 'image' ? 'https://… 이미지 주소' : '메시지를 입력하세요';
  input.focus();
});
/** Sends to the open room; true once stored. */
async function submit(body: OutgoingMessage): Promise<boolean> {
  const room = store.state.current;
  const result = await send(page, body);
  // Not a member: the room's `room-left` was lost (broadcasts are at most once): show it left.
  if (room && result && !result.ok && result.code === 'NOT_A_MEMBER') showLeft(page, room);
  return result?.ok === true;
}

$('composer').addEventListener('submit', (event) => {
  event.preventDefault();
  const value = input.value;
  const type = $select('message-type').value;
  const body: OutgoingMessage =
    type === 'image' ? { type: 'image', imageUrl: value.trim() } : { type: type === 'emoji' ? 'emoji' : 'text', content: value };
  void submit(body).then((sent) => {
    if (sent && input.value === value) input.value = '';
  });
});
for (const button of $('emoji-bar').querySelectorAll('button')) {
  button.addEventListener('click', () => void submit({ type: 'emoji', content: button.textContent ?? '' }));
}

setInterval(() => {
  tick(page);
  renderSessionExpiry(page);
}, 1000);
setInterval(() => {
  void refreshRooms(page);
  // A guest hears nothing live (no socket): the room being read follows its change feed.
  const room = store.state.current;
  if (room?.guest) void catchUp(page, room);
}, ROOM_LIST_REFRESH_MS);

start(page);
