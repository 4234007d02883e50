import { describe, expect, it } from 'vitest';
import type { RoomView } from '../client/api.ts';
import { createStore, type Session } from '../client/store.ts';

const session: Session = { token: 't', userId: 'u1', nickname: '김철수', expiresAt: '2099-01-01T00:00:00.000Z' };
const roomView = (roomId: string, memberCount = 1): RoomView => ({
  roomId,
  name: `방 ${roomId}`,
  memberCount,
  createdAt: '2026-01-01T00:00:00.000Z',
  expiresAt: '2026-01-02T00:00:00.000Z',
  expired: false,
  messageCount: 0,
  lastMessageAt: null,
});

describe('the page store', () => {
  it('starts with the stored session and nothing else', () => {
    const store = createStore(session);
    expect(store.state).toMatchObject({ session, socket: null, rooms: [], current: null, ownTyping: { sent: false } });
    store.setSession(null);
    expect(store.state.session).toBeNull();
  });

  it('patches a listed room without touching the list it replaced, and ignores unknown rooms', () => {
    const store = createStore(session);
    store.setRooms([roomView('a'), roomView('b')], false);
    const before = store.state.rooms;
    expect(store.patchRoom('b', { memberCount: 5 })).toBe(true);
    expect(store.state.rooms.map((room) => room.memberCount)).toEqual([1, 5]);
    expect(before[1]?.memberCount).toBe(1);
    expect(store.patchRoom('zzz', { memberCount: 9 })).toBe(false);
    store.dropRoom('a');
    expect(store.state.rooms.map((room) => room.roomId)).toEqual(['b']);
  });

  it('knows which room is on screen, also for references kept across awaits', () => {
    const store = createStore(session);
    const first = store.openRoom(roomView('a'));
    expect(store.isCurrent(first)).toBe(true);
    expect(store.currentIf('a')).toBe(first);
    expect(store.currentIf('b')).toBeNull();
    expect(store.closeRoom()).toBe(first);
    const second = store.openRoom(roomView('a'));
    // Same roomId, another visit: a late answer for the first must not land in the second.
    expect(store.isCurrent(first)).toBe(false);
    expect(store.isCurrent(second)).toBe(true);
    expect(second.timeline).not.toBe(first.timeline);
    // A closed room still takes updates (a catch-up finishing after it closed).
    store.setCatchingUp(first, null);
    store.setLoadingOlder(first, false);
  });

  it('tracks members through joins, leaves and presence', () => {
    const store = createStore(session);
    const room = store.openRoom(roomView('a'));
    store.setMembers(room, [['u1', { nicknameMask: '김**', online: true }]]);
    store.memberJoined(room, 'u2', '이**');
    store.memberPresence(room, 'u2', '이**', false);
    expect(room.members.get('u2')).toEqual({ nicknameMask: '이**', online: false });
    // Someone unknown going offline is nobody to show; coming online adds them.
    store.memberPresence(room, 'u3', '박**', false);
    expect(room.members.has('u3')).toBe(false);
    store.memberPresence(room, 'u3', '박**', true);
    expect(room.members.get('u3')).toEqual({ nicknameMask: '박**', online: true });
    expect(store.memberLeft(room, 'u2')).toEqual({ nicknameMask: '이**', online: false });
    expect(store.memberLeft(room, 'u2')).toBeUndefined();
    expect([...room.members.keys()]).toEqual(['u1', 'u3']);
  });

  it('keeps room facts, who types and catch-up flags per room', () => {
    const store = createStore(session);
    const room = store.openRoom(roomView('a', 2));
    store.setMemberCount(room, 3);
    store.setExpiresAt(room, '2026-01-03T00:00:00.000Z');
    store.markExpired(room);
    expect(room).toMatchObject({ memberCount: 3, expiresAt: '2026-01-03T00:00:00.000Z', expired: true });
    store.setTypist(room, 'u2', { nicknameMask: '이**', timer: 7 });
    expect(room.typing.get('u2')?.nicknameMask).toBe('이**');
    store.setTypist(room, 'u2', null);
    expect(room.typing.size).toBe(0);
    const run = Promise.resolve();
    store.setCatchingUp(room, run);
    store.setCatchUpAgain(room, true);
    expect(room).toMatchObject({ catchingUp: run, catchUpAgain: true });
  });

  it('remembers whether this connection was told that we type', () => {
    const store = createStore(session);
    store.setOwnTyping(true, 42);
    expect(store.state.ownTyping).toEqual({ sent: true, timer: 42 });
    store.setOwnTyping(false, 0);
    expect(store.state.ownTyping.sent).toBe(false);
  });

  it('keeps the last applied changeSeq per room, only ever moving it forward', () => {
    const store = createStore(session);
    const room = store.openRoom(roomView('a'));
    expect(room.changeSeq).toBeNull();
    store.advanceChangeSeq(room, 0);
    expect(room.changeSeq).toBe(0);
    store.advanceChangeSeq(room, 7);
    store.advanceChangeSeq(room, 5);
    expect(room.changeSeq).toBe(7);
    // A room opened again starts without a cursor: its first page sets one.
    expect(store.openRoom(roomView('a')).changeSeq).toBeNull();
    expect(room.changeSeq).toBe(7);
  });
});
