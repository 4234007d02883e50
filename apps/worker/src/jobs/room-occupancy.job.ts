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
  /** Aborted when the worker is stopping: no further chunk (what is due stays due for the next run). */
  stopping?: AbortSignal | undefined;
}

/** Users and rooms looked at together: three lookups and one recording statement for all of them. */
const SUBJECTS_PER_CHUNK = 500;
/**
 * Chunks per run at most (20,000 subjects), so that a run stays bounded; the rest go in the
 * next run, a second later. A pod's restart reconnects tens of thousands of users (k8s/README.md)
 * and marks every one of them: at one chunk of 200 a run, as before, their rooms were announced
 * minutes late.
 */
const MAX_CHUNKS_PER_RUN = 40;

/**
 * `room-occupied` / `room-vacated` (docs/webhooks.md): for the users whose presence changed
 * and the rooms whose membership changed at least the grace ago, each room is looked at as it is now
 * (any member online?) and a difference from the recorded occupancy becomes a change of the
 * room's feed, announced to the room. Looking at the state after the grace, not at the
 * transition, is what keeps a quick reconnect from flapping. A run takes everything due, in
 * chunks, up to MAX_CHUNKS_PER_RUN.
 */
export async function runRoomOccupancy(deps: RoomOccupancyDeps): Promise<{ looked: number; changed: number }> {
  let looked = 0;
  let changed = 0;
  for (let chunk = 0; chunk < MAX_CHUNKS_PER_RUN && !deps.stopping?.aborted; chunk++) {
    const due = await deps.queue.due(SUBJECTS_PER_CHUNK);
    if (due.length === 0) break;
    changed += await lookAt(deps, due);
    looked += due.length;
    // Settled subjects are gone and re-marked ones are not due: a short chunk was the last.
    if (due.length < SUBJECTS_PER_CHUNK) break;
  }
  return { looked, changed };
}

async function lookAt(deps: RoomOccupancyDeps, due: Awaited<ReturnType<OccupancyQueue['due']>>): Promise<number> {
  const userIds = due.flatMap((entry) => ('userId' in entry.subject ? [entry.subject.userId] : []));
  const roomsByUser = await deps.memberships.activeRoomIdsOfUsers(userIds);
  const roomIds = [
    ...new Set([...[...roomsByUser.values()].flat(), ...due.flatMap((entry) => ('roomId' in entry.subject ? [entry.subject.roomId] : []))]),
  ];
  const members = await deps.occupancy.membersOf(roomIds);
  const online = await deps.presence.onlineUsers([...new Set([...members.values()].flat())]);
  const changes = await deps.occupancy.recordMany(
    [...members].map(([roomId, userIds]) => ({ roomId, occupied: userIds.some((userId) => online.has(userId)) })),
  );
  for (const change of changes) {
    void deps.emitter.to(roomChannel(change.roomId)).emit(change.occupied ? 'room-occupied' : 'room-vacated', { roomId: change.roomId, changeSeq: change.changeSeq });
  }
  await deps.queue.settle(due);
  return changes.length;
}
