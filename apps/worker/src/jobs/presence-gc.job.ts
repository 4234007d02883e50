import type { Emitter } from '@socket.io/redis-emitter';
import type { Logger } from 'pino';
import type { MembershipsRepository, UsersRepository } from '@chat/db';
import { CHAT_NAMESPACE, isUuid, nicknameMask, roomChannel } from '@chat/protocol';
import type { DeadPod, PresenceStore } from '@chat/presence';

export interface PresenceGcDeps {
  presence: PresenceStore;
  memberships: MembershipsRepository;
  users: UsersRepository;
  emitter: Emitter;
  logger: Logger;
  /** A pod whose heartbeat is older than this is dead. */
  staleAfterMs: number;
}

/**
 * A pod killed without cleaning up leaves its users counted online. Its heartbeat stops; this
 * job removes the pod, announces `presence: offline` for users it was the last pod of, and
 * sends `resync { roomId }` to every active room of every user it held: the pod may have died
 * between a COMMIT and its broadcast, and a quiet room's other members would otherwise not
 * learn of that message until the next one (its `seq` jump) or their own reconnect.
 */
export async function runPresenceGc(deps: PresenceGcDeps): Promise<{ deadPods: number; offline: number; resyncedRooms: number }> {
  const dead = await deps.presence.collectDeadPods(deps.staleAfterMs);
  let offline = 0;
  let resyncedRooms = 0;
  for (const pod of dead) {
    const result = await announceDeadPod(deps, pod);
    offline += result.offline;
    resyncedRooms += result.resyncedRooms;
    deps.logger.warn({ podId: pod.podId, users: pod.userIds.length, ...result }, 'dead pod collected');
  }
  return { deadPods: dead.length, offline, resyncedRooms };
}

async function announceDeadPod(deps: PresenceGcDeps, pod: DeadPod): Promise<{ offline: number; resyncedRooms: number }> {
  const nsp = deps.emitter.of(CHAT_NAMESPACE);
  // Presence counts come from the handshake's verified `sub`; anything else is not ours to query.
  const roomsByUser = await deps.memberships.activeRoomIdsOfUsers(pod.userIds.filter(isUuid));
  let offline = 0;
  for (const userId of pod.offlineUserIds) {
    const user = isUuid(userId) ? await deps.users.find(userId) : null;
    if (!user) continue;
    const mask = nicknameMask(user.nickname);
    for (const roomId of roomsByUser.get(userId) ?? []) {
      nsp.to(roomChannel(roomId)).emit('presence', { roomId, userId, nicknameMask: mask, online: false });
    }
    offline += 1;
  }
  const rooms = new Set([...roomsByUser.values()].flat());
  for (const roomId of rooms) nsp.to(roomChannel(roomId)).emit('resync', { roomId });
  return { offline, resyncedRooms: rooms.size };
}
