import { uuidv7 } from '../lib/uuidv7.ts';
import { ROOM_CAP_REACHED, type MembershipsRepository, type RoomsRepository, type StoredRoom } from '@chat/db';
import {
  AppError,
  isUuid,
  MEMBER_LIST_DEFAULT_LIMIT,
  memberListCursor,
  nicknameMask,
  readRoomId,
  type CreateRoomBody,
  type MemberListQuery,
  type RoomJoinedPayload,
  type RoomLeftPayload,
  type RoomLifetimeChangedPayload,
  type RoomView,
} from '@chat/protocol';
import type { RoomCache, RoomMeta } from '../infrastructure/room-cache.ts';
import type { RoomEvents } from './room-events.ts';
import type { MembershipHint } from './message.service.ts';
import type { AuthenticatedUser } from './user-auth.service.ts';
import type { UserRateLimiter } from '../infrastructure/user-rate-limiter.ts';

export interface RoomServiceDeps {
  rooms: RoomsRepository;
  memberships: MembershipsRepository;
  roomCache: RoomCache;
  events: RoomEvents;
  roomTtlSeconds: number;
  /** Membership changes (join / leave) one user may make per minute (MEMBERSHIP_RATE_LIMIT_PER_MINUTE). */
  membershipLimiter: UserRateLimiter;
  /** Rooms one user may create per minute (ROOM_CREATE_RATE_LIMIT_PER_MINUTE). */
  creationLimiter: UserRateLimiter;
  /**
   * Live rooms one user may belong to (MAX_ROOMS_PER_USER): a connecting socket is put into
   * every one of them, and presence and occupancy go to every one of them.
   */
  maxRoomsPerUser: number;
  /** Which of these users have a socket on any pod right now. */
  onlineUsers(userIds: readonly string[]): Promise<Set<string>>;
}

const isExpired = (room: Pick<RoomMeta, 'expiresAt'>, now = Date.now()) =>
  room.expiresAt.getTime() <= now;

/** What every answer about a room says of it: the created room's and the listing's alike. */
function roomSummary(room: StoredRoom) {
  return {
    roomId: room.id,
    name: room.name,
    memberCount: room.memberCount,
    createdAt: room.createdAt.toISOString(),
    expiresAt: room.expiresAt.toISOString(),
  };
}

function toView(room: StoredRoom): RoomView {
  return {
    ...roomSummary(room),
    expired: isExpired(room),
    messageCount: room.messageCount,
    lastMessageAt: room.lastMessageAt?.toISOString() ?? null,
  };
}

export function createRoomService(deps: RoomServiceDeps) {
  const { rooms, memberships, roomCache, events } = deps;

  /**
   * The room when this pod has it cached and it has not expired; null when that takes a
   * lookup or an answer (then `requireActiveRoom`). Synchronous: a send's common case costs no
   * promise and no turn of the microtask queue.
   */
  function cachedActiveRoom(roomId: string): RoomMeta | null {
    const room = isUuid(roomId) ? roomCache.peek(roomId.toLowerCase()) : undefined;
    return room && !isExpired(room) ? room : null;
  }

  /** Room exists → not expired, from the in-process cache (no query once cached). */
  async function requireActiveRoom(roomId: string): Promise<RoomMeta> {
    const room = await requireRoom(roomId);
    if (isExpired(room)) throw new AppError('ROOM_EXPIRED');
    return room;
  }

  async function requireRoom(roomId: string): Promise<RoomMeta> {
    const id = isUuid(roomId) ? roomId.toLowerCase() : null;
    const room = id ? await roomCache.get(id) : null;
    if (!room) throw new AppError('ROOM_NOT_FOUND');
    // An expired room is a tombstone that the worker deletes after ROOM_TOMBSTONE_TTL: the
    // cache cannot tell, so ask the database (only for expired rooms, never on the hot path).
    // The server API may also have extended the room since it was cached: take the stored expiry.
    if (isExpired(room)) {
      const stored = await rooms.find(room.id);
      if (!stored) {
        roomCache.forget(room.id);
        throw new AppError('ROOM_NOT_FOUND');
      }
      if (!isExpired(stored)) {
        roomCache.forget(room.id);
        roomCache.remember(stored);
        return stored;
      }
    }
    return room;
  }

  return {
    cachedActiveRoom,
    requireActiveRoom,
    requireRoom,

    async create(creator: AuthenticatedUser, body: CreateRoomBody) {
      // Rooms live a day and every client lists them: a budget keeps one account from
      // flooding the listing for everyone.
      await deps.creationLimiter.consume(creator.id);
      const createdAt = new Date();
      const ttlSeconds = body.ttlSeconds ?? deps.roomTtlSeconds;
      const room = await rooms.create({
        id: uuidv7(),
        name: body.name,
        createdBy: creator.id,
        createdAt,
        expiresAt: new Date(createdAt.getTime() + ttlSeconds * 1000),
      });
      roomCache.remember(room);
      return { ...roomSummary(room), createdBy: room.createdBy };
    },

    async get(roomId: string): Promise<RoomView> {
      const room = isUuid(roomId) ? await rooms.find(roomId.toLowerCase()) : null;
      if (!room) throw new AppError('ROOM_NOT_FOUND');
      return toView(room);
    },

    async listActive(limit: number, before: string | undefined) {
      const anchor = before ? await rooms.find(before.toLowerCase()) : null;
      // A cursor naming no room must not silently restart the listing from the newest room:
      // a pager following `hasMore` would loop forever.
      if (before && !anchor) throw new AppError('INVALID_REQUEST');
      const page = await rooms.listActive(limit + 1, anchor);
      return { rooms: page.slice(0, limit).map(toView), hasMore: page.length > limit };
    },

    /**
     * [ext] A page of the room's members in joining order, with their live status, for a member
     * of the room only (who is in a room and online is not for strangers). A room that expired
     * and was purged has no members left, so nobody sees its list.
     */
    async members(viewer: AuthenticatedUser, roomId: string, query: MemberListQuery) {
      await requireRoom(roomId);
      const room = roomId.toLowerCase();
      const after = query.after?.toLowerCase() ?? null;
      const facts = await memberships.memberListFacts(room, viewer.id, after);
      if (!facts.viewerIsMember) throw new AppError('NOT_A_MEMBER');
      // A cursor naming nobody in the room must not restart the list from the top.
      if (after !== null && facts.after === null) throw new AppError('INVALID_REQUEST');
      const limit = query.limit ?? MEMBER_LIST_DEFAULT_LIMIT;
      const rows = await memberships.listMembers(room, { limit: limit + 1, after: query.cursor ?? facts.after });
      const page = rows.slice(0, limit);
      // One Redis call for the page, whatever its size.
      const online = await deps.onlineUsers(page.map((member) => member.userId)).catch(() => new Set<string>());
      return {
        members: page.map((member) => ({
          userId: member.userId,
          nicknameMask: nicknameMask(member.nickname),
          joinedAt: member.joinedAt.toISOString(),
          online: online.has(member.userId),
        })),
        memberCount: facts.total,
        hasMore: rows.length > limit,
        nextCursor: rows.length > limit ? memberListCursor(page.at(-1)!) : null,
      };
    },

    /**
     * PROTOCOL §2. Idempotent: only a newly added member is announced. `caller`: the caller's
     * socket, in the room already or not (sockets mirror membership). `repeat`: it was, and
     * nothing was written or published; the user's other devices need not hear of it.
     * `member`: whether the user is a member as the join is answered — false only for a repeat
     * join that a leave on another device overtook (see below).
     */
    async join(
      user: AuthenticatedUser,
      payload: unknown,
      caller: MembershipHint,
    ): Promise<{ answer: RoomJoinedPayload; repeat: boolean; member: boolean }> {
      const roomId = readRoomId(payload);
      if (caller.isInRoom(roomId)) {
        // A re-join from a socket already in the room changes nothing, so it costs nothing: a
        // client may repeat its joins after every reconnect. No budget, no write, no bus
        // publish (every socket of the user is in the room already): the room's liveness from
        // the cache, the count in one read by key. The socket being in the room means its user
        // is a member, except that the mirror trails a leave made on another pod by a Redis hop:
        // a repeat join in that gap is answered from the read (the count without the user) and
        // the leave's move takes the socket out just after; the membership's truth stays the
        // database's, and `member` says what it was, for the caller to hear `room-left` last.
        // A leave always costs one, so a join/leave toggle still pays for each round.
        await requireActiveRoom(roomId);
        const facts = await memberships.joinFacts(roomId, user.id);
        if (facts === null) throw new AppError('ROOM_EXPIRED');
        return {
          answer: { roomId, memberCount: facts.memberCount, lastChangeSeq: facts.lastChangeSeq },
          repeat: true,
          member: facts.isMember,
        };
      }
      await deps.membershipLimiter.consume(user.id);
      await requireActiveRoom(roomId);
      // Heard before written: a change committed right after the join reaches this socket live.
      const release = await events.hearRoomBeforeJoin(roomId);
      let change: Awaited<ReturnType<typeof memberships.add>>;
      try {
        change = await memberships.add(roomId, user.id, deps.maxRoomsPerUser);
        if (!change) throw new AppError('ROOM_EXPIRED');
        // Refused before anything is written: no row, no move, no announcement.
        if (change === ROOM_CAP_REACHED) throw new AppError('TOO_MANY_ROOMS');
        events.addUserToRoom(user.id, roomId);
        // The move above reaches this pod's sockets after a bus round trip; the caller's goes in
        // now, so releasing the hold leaves the room, and the subscription, in place.
        caller.enterRoom(roomId);
      } finally {
        release();
      }
      if (change.changed) {
        events.userJoined({
          roomId,
          userId: user.id,
          nicknameMask: user.nicknameMask,
          memberCount: change.memberCount,
          changeSeq: change.changeSeq ?? 0,
        });
      }
      return { answer: { roomId, memberCount: change.memberCount, lastChangeSeq: change.lastChangeSeq }, repeat: false, member: true };
    },

    /** PROTOCOL §3. Leaving needs no live room: a member may leave an expired one. */
    async leave(user: AuthenticatedUser, payload: unknown): Promise<RoomLeftPayload> {
      const roomId = readRoomId(payload);
      await deps.membershipLimiter.consume(user.id);
      await requireRoom(roomId);
      const change = await memberships.remove(roomId, user.id);
      if (!change.changed) throw new AppError('NOT_A_MEMBER_LEAVE');
      events.removeUserFromRoom(user.id, roomId);
      const changeSeq = change.changeSeq ?? 0;
      events.userLeft({ roomId, userId: user.id, memberCount: change.memberCount, changeSeq });
      return { roomId, changeSeq };
    },

    /**
     * Server API: takes a user out of a room (PROTOCOL §17). The room hears `user-left`, every
     * device of the user `room-left`, as if the user had left; no budget, and no live room needed.
     */
    async removeMember(roomId: string, userId: string): Promise<{ removed: boolean; changeSeq: number | null }> {
      await requireRoom(roomId);
      const room = roomId.toLowerCase();
      const user = userId.toLowerCase();
      const change = await memberships.remove(room, user);
      if (!change.changed) return { removed: false, changeSeq: null };
      events.removeUserFromRoom(user, room);
      const changeSeq = change.changeSeq ?? 0;
      events.roomLeftToUser(user, { roomId: room, changeSeq });
      events.userLeft({ roomId: room, userId: user, memberCount: change.memberCount, changeSeq });
      return { removed: true, changeSeq: change.changeSeq };
    },

    /**
     * Where the database puts these users: each one's rooms, `true` for a live one, `false` for
     * one past its expiry that the sweep has not emptied yet (for the realtime layer's mirror).
     */
    membershipsOf(userIds: readonly string[]): Promise<Map<string, Map<string, boolean>>> {
      return memberships.membershipsOfUsers(userIds);
    },

    forgetCached(roomId: string): void {
      roomCache.forget(roomId);
    },

    /** After the server API changed a room's expiry: this pod and every other re-read it, and its members are told. */
    lifetimeChanged(payload: RoomLifetimeChangedPayload): void {
      roomCache.forget(payload.roomId);
      events.roomLifetimeChanged(payload);
    },
  };
}

export type RoomService = ReturnType<typeof createRoomService>;
