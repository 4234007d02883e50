import type { Logger } from 'pino';
import type { MembershipsRepository, MessagesRepository, UsersRepository } from '@chat/db';
import { isUuid, nicknameMask, roomChannel } from '@chat/protocol';
import { PRESENCE_HEARTBEAT_MS, type AnnouncingLease, type DeadPod, type OccupancyQueue, type PresenceStore } from '@chat/presence';
import type { ChatEmitter } from '../infrastructure/chat-emitter.ts';
import type { WorkerMetrics } from '../metrics.ts';

/** A gateway pod's heartbeat older than this means the pod is gone. */
export const PRESENCE_STALE_AFTER_MS = 15_000;

/**
 * A dead pod's messages were created before it died, at most one heartbeat after its last one;
 * this much more covers the skew between a gateway's clock (`created_at`) and Redis's (beats).
 * Not covered: a pod cut off from Redis but not from Postgres, which goes on committing (and
 * failing to broadcast) without beating, then dies. A bound at the collection instead would
 * cover it, but would also resync every room where the pod's users wrote again, from other
 * pods, in the 15 s before the collection: after a pod dies, that is most of them.
 */
const CLOCK_SKEW_ALLOWANCE_MS = 5000;

export interface PresenceGcDeps {
  presence: PresenceStore;
  /** Where a user taken offline is marked, so their rooms' occupancy is looked at. */
  occupancy?: OccupancyQueue;
  memberships: MembershipsRepository;
  messages: MessagesRepository;
  users: UsersRepository;
  emitter: ChatEmitter;
  logger: Logger;
  /** A pod whose heartbeat is older than this is dead. */
  staleAfterMs: number;
}

/**
 * Renewed before each pod's announcements, so it only has to outlast one pod's lookups (each
 * query is bounded by the statement timeout, 5 s): a worker killed mid-run holds the others
 * back no longer than this.
 */
const ANNOUNCING_LEASE_MS = 15_000;

/** The run's lease lapsed (a lookup outlasted it): another run may be announcing now. */
class LeaseLostError extends Error {
  constructor() {
    super('presence GC lease lapsed during the run');
    this.name = 'LeaseLostError';
  }
}

export interface PresenceGcResult {
  deadPods: number;
  offline: number;
  resyncedRooms: number;
  /** Pods left for the next run, and why the first of them failed (null: none left). */
  failure: unknown;
}

/**
 * A pod killed without cleaning up leaves its users counted online. Its heartbeat stops; this
 * job removes the pod and announces `presence: offline` for users it was the last pod of.
 *
 * The pod may also have died between a COMMIT and its broadcast. Members elsewhere learn of
 * such a message at the room's next one (its `seq` jump), which in a quiet room may never come,
 * so the rooms where it could be the newest get `resync { roomId }`: rooms of the pod's users
 * whose newest message is one of theirs from before the pod died. Not every room of theirs:
 * after a pod dies its clients reconnect and catch up anyway, and a resync to every room would
 * send each member of each of them to the database once more, at the same moment.
 */
export async function runPresenceGc(deps: PresenceGcDeps): Promise<PresenceGcResult> {
  await deps.presence.collectDeadPods(deps.staleAfterMs);
  // One run announces at a time: the pods stay on the list until announced, so two runs at
  // once (worker replicas, or a run slower than its interval) would both announce them.
  const lease = await deps.presence.leaseAnnouncing(ANNOUNCING_LEASE_MS);
  if (!lease) return { deadPods: 0, offline: 0, resyncedRooms: 0, failure: null };
  try {
    // Collected now or by an earlier run that failed before announcing (Postgres away): a pod
    // leaves the list only once announced, so a failure here is retried by the next run.
    const dead = await deps.presence.collectedDeadPods();
    const result: PresenceGcResult = { deadPods: 0, offline: 0, resyncedRooms: 0, failure: null };
    for (const pod of dead) {
      // Each pod on its own: one that cannot be announced does not hold back the others.
      try {
        const announced = await announceDeadPod(deps, pod, lease);
        await deps.presence.settleDeadPod(pod);
        result.deadPods += 1;
        result.offline += announced.offline;
        result.resyncedRooms += announced.resyncedRooms;
        deps.logger.warn({ podId: pod.podId, users: pod.userIds.length, ...announced }, 'dead pod collected');
      } catch (error) {
        result.failure ??= error;
        deps.logger.error({ err: error, podId: pod.podId }, 'dead pod not announced yet; the next run retries');
        // Without the lease every further announcement could be another run's as well.
        if (error instanceof LeaseLostError) break;
      }
    }
    return result;
  } finally {
    await lease.release().catch(() => undefined);
  }
}

async function announceDeadPod(deps: PresenceGcDeps, pod: DeadPod, lease: AnnouncingLease): Promise<{ offline: number; resyncedRooms: number }> {
  // Every lookup first, every announcement after: a run that fails on a lookup has announced
  // nothing, so its retry does not announce anything twice.
  // Presence counts come from the handshake's verified `sub`; anything else is not ours to query.
  const roomsByUser = await deps.memberships.activeRoomIdsOfUsers(pod.userIds.filter(isUuid));
  const users = await deps.users.findMany(pod.offlineUserIds.filter(isUuid));
  const diedBy = new Date(pod.lastHeartbeatMs + PRESENCE_HEARTBEAT_MS + CLOCK_SKEW_ALLOWANCE_MS);
  const resyncRooms = await deps.messages.roomsLastWrittenBy([...new Set([...roomsByUser.values()].flat())], [...roomsByUser.keys()], diedBy);
  // Last, right before announcing: whoever is online again (reconnected, or the pod was only
  // slow and has beaten since, re-announcing them) must not be announced offline after that.
  const backOnline = await deps.presence.onlineUsers(pod.offlineUserIds);
  const gone = pod.offlineUserIds.filter((userId) => !backOnline.has(userId));
  // Offline since the pod died, longer than any grace: their rooms' occupancy is looked at at
  // once (room-vacated). Before the emits, and not ignored when it fails: a pod is settled only
  // once announced, so a failed mark leaves it, announced to nobody yet, for the next run. Marks
  // swallowed after the emits settled the pod with its rooms never looked at: a room whose last
  // online member it held stayed occupied, its room-vacated never recorded.
  await deps.occupancy?.markMany(gone.map((userId) => ({ userId })), 0);
  // The emits below are issued synchronously (their answers are not awaited): a lease still
  // held here is held while they go out.
  if (!(await lease.renew())) throw new LeaseLostError();

  const nsp = deps.emitter;
  let offline = 0;
  for (const userId of gone) {
    const user = users.get(userId);
    if (!user) continue;
    const mask = nicknameMask(user.nickname);
    for (const roomId of roomsByUser.get(userId) ?? []) {
      void nsp.to(roomChannel(roomId)).emit('presence', { roomId, userId, nicknameMask: mask, online: false });
    }
    offline += 1;
  }
  for (const roomId of resyncRooms) void nsp.to(roomChannel(roomId)).emit('resync', { roomId });
  return { offline, resyncedRooms: resyncRooms.length };
}

/** The `presenceGc` job: one collection, counted in the worker's metrics. */
export function presenceGcJob(deps: PresenceGcDeps, metrics: WorkerMetrics): () => Promise<PresenceGcResult> {
  return async () => {
    const result = await runPresenceGc(deps);
    metrics.presenceOffline.inc(result.offline);
    metrics.deadPodResyncs.inc(result.resyncedRooms);
    // Counted above even so: the pods that were announced in this run stay announced.
    if (result.failure) throw result.failure;
    return result;
  };
}
