import type { Logger } from 'pino';
import type { RoomExpiryRepository } from '@chat/db';
import { roomChannel } from '@chat/protocol';
import type { ChatEmitter } from '../infrastructure/chat-emitter.ts';
import type { WorkerMetrics } from '../metrics.ts';

export interface RoomSweepDeps {
  expiry: RoomExpiryRepository;
  emitter: ChatEmitter;
  logger: Logger;
  expiringNoticeMs: number;
  tombstoneTtlMs: number;
  batchSize: number;
  /** How long a sweep goes on picking due rooms (default SWEEP_BUDGET_MS). */
  budgetMs?: number;
  /**
   * Aborted when the worker is stopping: the sweep picks no more rooms, starts no other room,
   * and stops a room's purge after its current batch (the room stays due; the next sweep, on
   * any replica, finishes it).
   */
  stopping?: AbortSignal;
  /** How old an unannounced `room-expiring` or `room-expired` record is before any sweep announces it (default ANNOUNCED_WITHIN_MS). */
  announcedWithinMs?: number;
}

export interface RoomSweepResult {
  /** Rooms whose `room-expiring` the bus took. */
  warned: number;
  /** Rooms whose `room-expiring` the bus did not take: recorded, announced by a later sweep. */
  unwarned: number;
  expired: number;
  membersPurged: number;
  tombstonesDeleted: number;
  /** Rooms whose `room-expired` the bus did not take: left due, announced by a later sweep. */
  unannounced: number;
  /** How late the most overdue room was when this sweep reached it. */
  maxLagMs: number;
}

/** Rooms read per pick; a sweep picks again while rooms are due, within its budget. */
const ROOMS_PER_PICK = 200;
/** Picks per sweep at most (5,000 rooms); the rest wait for the next sweep. */
const MAX_PICKS_PER_SWEEP = 25;
/**
 * Rooms expired at a time. Each room's steps stay in their order (announce, leave, purge,
 * mark); rooms are independent of each other, and one at a time a sweep expired ~450 rooms a
 * second, round trips apart: a load test's thousands of rooms with one TTL were announced
 * expired up to a minute late. Four: the worker's database pool.
 */
const ROOMS_AT_ONCE = 4;
/** Default for `budgetMs` (the job gives three quarters of SWEEP_INTERVAL_MS). */
const SWEEP_BUDGET_MS = 1500;
/**
 * A `room-expired` (or `room-expiring`) recorded longer ago than this and still not announced:
 * the sweep that recorded it died, or the bus refused it, before the announcement was taken (it
 * announces right after the record's commit, in milliseconds), and the next sweep to reach the
 * room announces it. Within it, the recorder may still be at it (a replica's overlapping sweep):
 * the room is not announced twice.
 */
const ANNOUNCED_WITHIN_MS = 30_000;
/** Bounds one room's share of a sweep; a bigger room is simply continued by the next sweep. */
const MAX_BATCHES_PER_ROOM = 10_000;

/** Tries to publish a room's `room-expired` this many times, this far apart, before leaving it to a later sweep. */
const ANNOUNCE_ATTEMPTS = 3;
const ANNOUNCE_RETRY_MS = 250;

/**
 * Publishes `room-expired` to the room and then makes its sockets leave; true once the bus took
 * the announcement. The announcement goes on the room's channel and the leave on the main
 * channel, which on a cluster bus may live on another master: the leave only once Redis has
 * taken the announcement, or it could overtake it and the members would never hear it. A leave
 * that fails is not retried: the room is expired, its members' sends are refused, and their
 * sockets leave it when they reconnect.
 */
async function announceExpired(nsp: ChatEmitter, roomId: string, changeSeq: number): Promise<boolean> {
  for (let attempt = 1; attempt <= ANNOUNCE_ATTEMPTS; attempt++) {
    if (await nsp.to(roomChannel(roomId)).emit('room-expired', { roomId, changeSeq })) {
      await nsp.in(roomChannel(roomId)).socketsLeave(roomChannel(roomId));
      return true;
    }
    if (attempt < ANNOUNCE_ATTEMPTS) await new Promise((resolve) => setTimeout(resolve, ANNOUNCE_RETRY_MS * attempt));
  }
  return false;
}

/** Runs `each` over `items`, at most `atOnce` at a time; after a failure, or once `stop()`, it starts no more. */
async function forEachAtOnce<T>(items: readonly T[], atOnce: number, stop: () => boolean, each: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed = false;
  const lane = async () => {
    while (next < items.length && !failed && !stop()) {
      try {
        await each(items[next++]!);
      } catch (error) {
        failed = true;
        throw error;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(atOnce, items.length) }, lane));
}

/**
 * One pass of PROTOCOL §10. Each room is announced, emptied on every pod, its memberships
 * purged in bounded batches, and only then marked expired, so a sweep that dies midway is
 * simply redone by the next (the rows cannot come back; `room-expired` is announced once, and
 * nothing is purged before the bus has taken it).
 * Messages are not deleted per room: a room's messages sit in the partition of its expiry
 * day, unreadable from `expires_at` on, and the partition job drops the whole day once every
 * room of it is marked expired here (partition-maintenance.job.ts).
 */
export async function runRoomSweep(deps: RoomSweepDeps): Promise<RoomSweepResult> {
  const { expiry, logger, batchSize } = deps;
  const nsp = deps.emitter;
  const result: RoomSweepResult = {
    warned: 0,
    unwarned: 0,
    expired: 0,
    membersPurged: 0,
    tombstonesDeleted: 0,
    unannounced: 0,
    maxLagMs: 0,
  };

  const budgetMs = deps.budgetMs ?? SWEEP_BUDGET_MS;
  let busRefused = false;
  const started = Date.now();
  const stopping = () => deps.stopping?.aborted === true;
  /** Picks due rooms until none are left, MAX_PICKS_PER_SWEEP, the budget or the worker's stop: true to go on. */
  const goOn = (picks: number, picked: number) =>
    picked === ROOMS_PER_PICK && picks < MAX_PICKS_PER_SWEEP && Date.now() - started < budgetMs && !stopping();

  const announcedWithinMs = deps.announcedWithinMs ?? ANNOUNCED_WITHIN_MS;
  if (deps.expiringNoticeMs > 0) {
    for (let picks = 1; ; picks++) {
      const expiring = await expiry.dueForWarning(deps.expiringNoticeMs, announcedWithinMs, ROOMS_PER_PICK);
      // Recorded in each room's change feed first, announced after: the live event carries the
      // change's number. Marked announced only once the bus took it: a room whose announcement
      // was refused (or whose sweep died first) keeps its record unannounced, and a sweep
      // announces it again, with the same number, once the record is `announcedWithinMs` old.
      const warned = await expiry.recordExpiring(
        expiring.map((room) => room.id),
        announcedWithinMs,
      );
      const taken = await Promise.all(
        warned.map((room) =>
          nsp
            .to(roomChannel(room.id))
            .emit('room-expiring', { roomId: room.id, expiresAt: room.expiresAt.toISOString(), changeSeq: room.changeSeq })
            // The emitter reports a refused publish and resolves false; anything it throws is one too.
            .catch(() => false),
        ),
      );
      const announced = warned.filter((_room, index) => taken[index]);
      await expiry.markExpiringAnnounced(announced);
      result.warned += announced.length;
      result.unwarned += warned.length - announced.length;
      // The bus refusing: the next pick's rooms would be refused too.
      if (announced.length < warned.length || !goOn(picks, expiring.length)) break;
    }
  }

  for (let picks = 1; ; picks++) {
    const due = await expiry.dueForExpiry(ROOMS_PER_PICK);
    await forEachAtOnce(due, ROOMS_AT_ONCE, stopping, async (room) => {
      const lagMs = Date.now() - room.expiresAt.getTime();
      // The change feed's `room-expired`, recorded once (a repeated sweep gets the same number).
      // Null: the room is not ours to expire any more. Either its row went away (another sweep
      // finished it and deleted its tombstone) or it is no longer due: the server API extended
      // it after this pick (an extend that held the room's lock across the old expiry commits
      // after it). Either way nothing of it is touched: no announcement, no leave, no purge, no
      // mark; a room that is due again is picked again.
      const recorded = await expiry.recordExpired(room.id, announcedWithinMs);
      if (recorded === null || recorded.next === 'wait') return;
      result.maxLagMs = Math.max(result.maxLagMs, lagMs);
      // Announced once (PROTOCOL §10): by the sweep that recorded it, or by a later one when that
      // sweep died, or the bus refused it, before the announcement was taken.
      if (recorded.next === 'announce') {
        // After one room the bus refused, this sweep tries no other: each would wait its retries out.
        if (busRefused || !(await announceExpired(nsp, room.id, recorded.changeSeq))) {
          busRefused = true;
          // Nothing purged or marked: the room stays due, its record ages, and a sweep announces
          // it once the record is ANNOUNCED_WITHIN_MS old. Its members are not left untold.
          result.unannounced += 1;
          return;
        }
        await expiry.markAnnounced(room.id);
      }
      // Until a batch finds nothing: a short batch does not mean "empty" when another sweep is
      // purging the same room. markExpired re-checks emptiness, so stopping early is only late.
      for (let purged = -1, batches = 0; purged !== 0 && batches < MAX_BATCHES_PER_ROOM; batches++) {
        if (stopping()) return;
        purged = await expiry.purgeMembers(room.id, batchSize);
        result.membersPurged += purged;
      }
      if (await expiry.markExpired(room.id)) result.expired += 1;
    });
    if (!goOn(picks, due.length)) break;
  }

  if (!stopping()) result.tombstonesDeleted = await expiry.deleteTombstones(deps.tombstoneTtlMs, ROOMS_PER_PICK);
  if (result.unannounced > 0 || result.unwarned > 0) {
    logger.warn(result, 'room sweep: the bus did not take some room-expiring / room-expired announcements; a later sweep repeats them');
  }
  else if (result.expired > 0 || result.warned > 0 || result.tombstonesDeleted > 0) {
    logger.info(result, 'room sweep');
  }
  return result;
}

/** The `roomSweep` job: one sweep, counted in the worker's metrics. */
export function roomSweepJob(deps: RoomSweepDeps, metrics: WorkerMetrics): (payload?: unknown, stopping?: AbortSignal) => Promise<RoomSweepResult> {
  return async (_payload, stopping) => {
    const result = await runRoomSweep(stopping ? { ...deps, stopping } : deps);
    metrics.roomsExpired.inc(result.expired);
    metrics.rowsPurged.inc({ table: 'room_members' }, result.membersPurged);
    metrics.rowsPurged.inc({ table: 'rooms' }, result.tombstonesDeleted);
    return result;
  };
}
