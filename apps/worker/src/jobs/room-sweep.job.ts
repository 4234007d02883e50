import type { Emitter } from '@socket.io/redis-emitter';
import type { Logger } from 'pino';
import type { RoomExpiryRepository } from '@chat/db';
import { CHAT_NAMESPACE, roomChannel } from '@chat/protocol';

export interface RoomSweepDeps {
  expiry: RoomExpiryRepository;
  emitter: Emitter;
  logger: Logger;
  expiringNoticeMs: number;
  tombstoneTtlMs: number;
  batchSize: number;
}

export interface RoomSweepResult {
  warned: number;
  expired: number;
  membersPurged: number;
  tombstonesDeleted: number;
  /** How late the most overdue room was when this sweep reached it. */
  maxLagMs: number;
}

const ROOMS_PER_SWEEP = 200;
/** Bounds one room's share of a sweep; a bigger room is simply continued by the next sweep. */
const MAX_BATCHES_PER_ROOM = 10_000;

/**
 * One pass of PROTOCOL §10. Each room is announced, emptied on every pod, its memberships
 * purged in bounded batches, and only then marked expired, so a sweep that dies midway is
 * simply redone by the next (the announcements may repeat; the rows cannot come back).
 * Messages are not deleted per room: a room's messages sit in the partition of its expiry
 * day, unreadable from `expires_at` on, and the partition job drops the whole day once every
 * room of it is marked expired here (partition-maintenance.job.ts).
 */
export async function runRoomSweep(deps: RoomSweepDeps): Promise<RoomSweepResult> {
  const { expiry, logger, batchSize } = deps;
  const nsp = deps.emitter.of(CHAT_NAMESPACE);
  const result: RoomSweepResult = {
    warned: 0,
    expired: 0,
    membersPurged: 0,
    tombstonesDeleted: 0,
    maxLagMs: 0,
  };

  if (deps.expiringNoticeMs > 0) {
    const expiring = await expiry.dueForWarning(deps.expiringNoticeMs, ROOMS_PER_SWEEP);
    for (const room of expiring) {
      nsp.to(roomChannel(room.id)).emit('room-expiring', {
        roomId: room.id,
        expiresAt: room.expiresAt.toISOString(),
      });
    }
    await expiry.markWarned(expiring.map((room) => room.id));
    result.warned = expiring.length;
  }

  const due = await expiry.dueForExpiry(ROOMS_PER_SWEEP);
  for (const room of due) {
    result.maxLagMs = Math.max(result.maxLagMs, Date.now() - room.expiresAt.getTime());
    nsp.to(roomChannel(room.id)).emit('room-expired', { roomId: room.id });
    nsp.in(roomChannel(room.id)).socketsLeave(roomChannel(room.id));
    // Until a batch finds nothing: a short batch does not mean "empty" when another sweep is
    // purging the same room. markExpired re-checks emptiness, so stopping early is only late.
    for (let purged = -1, batches = 0; purged !== 0 && batches < MAX_BATCHES_PER_ROOM; batches++) {
      purged = await expiry.purgeMembers(room.id, batchSize);
      result.membersPurged += purged;
    }
    if (await expiry.markExpired(room.id)) result.expired += 1;
  }

  result.tombstonesDeleted = await expiry.deleteTombstones(deps.tombstoneTtlMs, ROOMS_PER_SWEEP);
  if (result.expired > 0 || result.warned > 0 || result.tombstonesDeleted > 0) {
    logger.info(result, 'room sweep');
  }
  return result;
}
