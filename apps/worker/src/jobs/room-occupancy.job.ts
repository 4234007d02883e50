import type { Logger } from 'pino';
import type { MembershipsRepository, RoomOccupancyRepository } from '@chat/db';
import type { OccupancyQueue, PresenceStore } from '@chat/presence';
import { roomChannel } from '@chat/protocol';
import type { ChatEmitter } from '../infrastructure/chat-emitter.ts';

export interface RoomOccupancyDeps {
  queue: OccupancyQueue;
  presence: PresenceStore;
  memberships: MembershipsRepository;
  occupancy: RoomOccupancyRepository;
  emitter: ChatEmitter;
  logger: Logger;
}

/** Users and rooms looked at per run; the rest wait for the next run. */
const USERS_PER_RUN = 200;

/**
 * `room-occupied` / `room-vacated` (docs/webhooks.md): for the users whose presence changed
 * and the rooms whose membership changed at least the grace ago, each room is looked at as it is now
 * (any member online?) and a difference from the recorded occupancy becomes a change of the
 * room's feed, announced to the room. Looking at the state after the grace, not at the
 * transition, is what keeps a quick reconnect from flapping.
 */
export async function runRoomOccupancy(deps: RoomOccupancyDeps): Promise<{ changed: number }> {
  const due = await deps.queue.due(USERS_PER_RUN);
  if (due.length === 0) return { changed: 0 };
  const userIds = due.flatMap((entry) => ('userId' in entry.subject ? [entry.subject.userId] : []));
  const roomsByUser = await deps.memberships.activeRoomIdsOfUsers(userIds);
  const roomIds = [
    ...new Set([...[...roomsByUser.values()].flat(), ...due.flatMap((entry) => ('roomId' in entry.subject ? [entry.subject.roomId] : []))]),
  ];
  const members = await deps.occupancy.membersOf(roomIds);
  const online = await deps.presence.onlineUsers([...new Set([...members.values()].flat())]);
  const nsp = deps.emitter;
  let changed = 0;
  for (const [roomId, userIds] of members) {
    const occupied = userIds.some((userId) => online.has(userId));
    const changeSeq = await deps.occupancy.record(roomId, occupied);
    if (changeSeq === null) continue;
    void nsp.to(roomChannel(roomId)).emit(occupied ? 'room-occupied' : 'room-vacated', { roomId, changeSeq });
    changed += 1;
  }
  await deps.queue.settle(due);
  return { changed };
}
