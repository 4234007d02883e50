import type { Socket } from 'socket.io-client';
import type { ClientEmits, NewMessagePayload, ServerToClientEvents } from '@chat/protocol';
import type { Api, RoomView } from './api.ts';
import type { OutageNotice } from './outage.ts';
import type { SendQueue } from './pending-send.ts';
import { Timeline } from './timeline.ts';

/**
 * The page's only mutable state. Every other module reads `store.state` (read-only types)
 * and changes it through the update functions below, so a reader finds every write here.
 * No DOM and no network: unit-tested in apps/web/test.
 */

export type ChatSocket = Socket<ServerToClientEvents, ClientEmits>;

export interface Session {
  readonly token: string;
  readonly userId: string;
  readonly nickname: string;
  readonly expiresAt: string;
}

export interface Member {
  readonly nicknameMask: string;
  readonly online: boolean;
}

/**
 * A message's element as the store sees it: something to take off the page on delete.
 * (No DOM types here, so the store is typechecked and tested under Node.)
 */
export interface ShownMessage {
  remove(): void;
}

export interface Typist {
  readonly nicknameMask: string;
  /** Hides the indicator if `isTyping: false` never comes. */
  readonly timer: number;
}

/** The room on screen. Stale references stay valid after it closes (`isCurrent` tells). */
export interface OpenRoom {
  readonly roomId: string;
  readonly name: string;
  readonly expiresAt: string;
  readonly memberCount: number;
  readonly expired: boolean;
  /**
   * The user is no longer a member (`room-left`: left on another device, or removed by a
   * backend): the room stays on screen, closed to sending, until it is picked again (a join)
   * or the user joins it again on another device.
   */
  readonly left: boolean;
  /** A `leave-room` of this page is on its way (its `room-left` then closes the room). */
  readonly leaving: boolean;
  /**
   * Opened without a session (a guest): read over REST only (PROTOCOL §7, §16 let guests read;
   * the socket needs a token), never joined, nothing to send. Signing in joins it.
   */
  readonly guest: boolean;
  /** Messages held (its own methods are its updates: it is the timeline's model). */
  readonly timeline: Timeline;
  /** The element shown for each messageId, to remove it on delete. */
  readonly elements: ReadonlyMap<string, ShownMessage>;
  readonly members: ReadonlyMap<string, Member>;
  readonly typing: ReadonlyMap<string, Typist>;
  /**
   * The last change of the room's feed (PROTOCOL §16) applied here; null until the first
   * history page is in (change-feed.ts says where it starts).
   */
  readonly changeSeq: number | null;
  /** Where the room's feed stood when this page's join was answered (`room-joined`'s `lastChangeSeq`); null before. */
  readonly joinedChangeSeq: number | null;
  /** The catch-up under way, if any; `catchUpAgain` asks it to go round once more. */
  readonly catchingUp: Promise<void> | null;
  readonly catchUpAgain: boolean;
  /** Failed catch-ups (or first pages) in a row, and the timer of the next attempt (catch-up.ts). */
  readonly catchUpRetry: { readonly attempts: number; readonly timer: ReturnType<typeof setTimeout> | undefined };
  readonly loadingOlder: boolean;
}

export interface PageState {
  readonly session: Session | null;
  readonly socket: ChatSocket | null;
  readonly rooms: readonly RoomView[];
  /** The server has rooms after the last one listed (`hasMore`): the list pages on. */
  readonly roomsHasMore: boolean;
  readonly current: OpenRoom | null;
  /** Whether `isTyping: true` went out on this connection, and the timer that takes it back. */
  readonly ownTyping: { readonly sent: boolean; readonly timer: number };
  readonly toastTimer: number;
  /** The server's clock minus the page's (server-clock.ts): expiry is counted on the server's. */
  readonly clockOffsetMs: number;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

interface RoomState extends Mutable<Omit<OpenRoom, 'elements' | 'members' | 'typing'>> {
  elements: Map<string, ShownMessage>;
  members: Map<string, Member>;
  typing: Map<string, Typist>;
}

export type RoomListChange = Partial<Pick<RoomView, 'memberCount' | 'expiresAt'>>;

export function createStore(session: Session | null) {
  const state: Mutable<PageState> = {
    session,
    socket: null,
    rooms: [],
    roomsHasMore: false,
    current: null,
    ownTyping: { sent: false, timer: 0 },
    toastTimer: 0,
    clockOffsetMs: 0,
  };
  // Rooms are only ever made below, so an OpenRoom handed out is always a RoomState.
  const write = (room: OpenRoom) => room as RoomState;

  return {
    get state(): PageState {
      return state;
    },

    setSession(next: Session | null): void {
      state.session = next;
    },
    setSocket(next: ChatSocket | null): void {
      state.socket = next;
    },

    setRooms(rooms: readonly RoomView[], hasMore: boolean): void {
      state.rooms = rooms;
      state.roomsHasMore = hasMore;
    },
    /** False when the room is not in the list (nothing to show then). */
    patchRoom(roomId: string, change: RoomListChange): boolean {
      if (!state.rooms.some((room) => room.roomId === roomId)) return false;
      state.rooms = state.rooms.map((room) => (room.roomId === roomId ? { ...room, ...change } : room));
      return true;
    },
    dropRoom(roomId: string): void {
      state.rooms = state.rooms.filter((room) => room.roomId !== roomId);
    },

    /** Puts a new room on screen (the caller has closed the previous one). */
    openRoom(info: Pick<RoomView, 'roomId' | 'name' | 'expiresAt' | 'memberCount'>, { guest = false } = {}): OpenRoom {
      const room: RoomState = {
        roomId: info.roomId,
        name: info.name,
        expiresAt: info.expiresAt,
        memberCount: info.memberCount,
        expired: false,
        left: false,
        leaving: false,
        guest,
        timeline: new Timeline(),
        elements: new Map(),
        members: new Map(),
        typing: new Map(),
        changeSeq: null,
        joinedChangeSeq: null,
        catchingUp: null,
        catchUpAgain: false,
        catchUpRetry: { attempts: 0, timer: undefined },
        loadingOlder: false,
      };
      state.current = room;
      return room;
    },
    /** Takes the room off screen; returns it so its timers can be stopped. */
    closeRoom(): OpenRoom | null {
      const room = state.current;
      state.current = null;
      return room;
    },
    isCurrent(room: OpenRoom): boolean {
      return state.current === room;
    },
    /** The open room if it is `roomId`: what every room event checks first. */
    currentIf(roomId: string): OpenRoom | null {
      return state.current?.roomId === roomId ? state.current : null;
    },
    /**
     * Whether `roomId` is on screen as it would be opened now: picking it in the list then does
     * nothing. A room shown as left is picked to join it again, and one a guest was reading is
     * joined once signed in.
     */
    openAndJoined(roomId: string): boolean {
      const room = state.current;
      return room?.roomId === roomId && !room.left && room.guest === (state.session === null);
    },

    setMemberCount(room: OpenRoom, memberCount: number): void {
      write(room).memberCount = memberCount;
    },
    setJoinedChangeSeq(room: OpenRoom, lastChangeSeq: number): void {
      write(room).joinedChangeSeq = lastChangeSeq;
    },
    setExpiresAt(room: OpenRoom, expiresAt: string): void {
      write(room).expiresAt = expiresAt;
    },
    markExpired(room: OpenRoom): void {
      write(room).expired = true;
    },
    markLeft(room: OpenRoom): void {
      write(room).left = true;
    },
    /** Joined again on another device (`room-joined`): the room shown left is open to sending again. */
    markRejoined(room: OpenRoom): void {
      write(room).left = false;
    },
    setLeaving(room: OpenRoom, leaving: boolean): void {
      write(room).leaving = leaving;
    },

    setMembers(room: OpenRoom, members: Iterable<[string, Member]>): void {
      write(room).members = new Map(members);
    },
    memberJoined(room: OpenRoom, userId: string, nicknameMask: string): void {
      write(room).members.set(userId, { nicknameMask, online: true });
    },
    /** Returns who left, if the page knew them. */
    memberLeft(room: OpenRoom, userId: string): Member | undefined {
      const member = room.members.get(userId);
      write(room).members.delete(userId);
      return member;
    },
    /** An unknown member going offline is nobody to show. */
    memberPresence(room: OpenRoom, userId: string, nicknameMask: string, online: boolean): void {
      const member = room.members.get(userId);
      if (member) write(room).members.set(userId, { ...member, online });
      else if (online) write(room).members.set(userId, { nicknameMask, online });
    },

    setTypist(room: OpenRoom, userId: string, typist: Typist | null): void {
      if (typist) write(room).typing.set(userId, typist);
      else write(room).typing.delete(userId);
    },

    trackElement(room: OpenRoom, messageId: string, element: ShownMessage): void {
      write(room).elements.set(messageId, element);
    },
    untrackElement(room: OpenRoom, messageId: string): void {
      write(room).elements.delete(messageId);
    },

    /** Moves the cursor forward only: a late or repeated change never takes it back. */
    advanceChangeSeq(room: OpenRoom, changeSeq: number): void {
      if (room.changeSeq === null || changeSeq > room.changeSeq) write(room).changeSeq = changeSeq;
    },

    setCatchingUp(room: OpenRoom, run: Promise<void> | null): void {
      write(room).catchingUp = run;
    },
    setCatchUpAgain(room: OpenRoom, again: boolean): void {
      write(room).catchUpAgain = again;
    },
    setCatchUpRetry(room: OpenRoom, attempts: number, timer: ReturnType<typeof setTimeout> | undefined): void {
      write(room).catchUpRetry = { attempts, timer };
    },
    setLoadingOlder(room: OpenRoom, loading: boolean): void {
      write(room).loadingOlder = loading;
    },

    setOwnTyping(sent: boolean, timer: number): void {
      state.ownTyping = { sent, timer };
    },
    setToastTimer(timer: number): void {
      state.toastTimer = timer;
    },

    setClockOffset(offsetMs: number): void {
      state.clockOffsetMs = offsetMs;
    },
    /** Now on the server's clock. */
    now(): number {
      return Date.now() + state.clockOffsetMs;
    },
  };
}

export type Store = ReturnType<typeof createStore>;

/**
 * What every module of the page is handed: the state, the REST API, the sends not yet
 * known to be stored and the room list's outage notice (explicit wiring).
 */
export interface Page {
  readonly store: Store;
  readonly api: Api;
  readonly sends: SendQueue<NewMessagePayload>;
  /** Whether the room list's refresh has said already that the server cannot be reached. */
  readonly roomListOutage: OutageNotice;
}
