import type { Emitter } from '@socket.io/redis-emitter';
import type { Logger } from 'pino';
import type { MembershipsRepository, UsersRepository } from '@chat/db';
import { CHAT_NAMESPACE, nicknameMask, roomChannel } from '@chat/protocol';
import type { PresenceStore } from '@chat/presence';

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
 * job removes the pod and announces `presence: offline` for users it was the last pod of.
 */
export async function runPresenceGc(deps: PresenceGcDeps): Promise<{ deadPods: number; offline: number }> {
  const dead = await deps.presence.collectDeadPods(deps.staleAfterMs);
  const nsp = deps.emitter.of(CHAT_NAMESPACE);
  let offline = 0;
  for (const pod of dead) {
    for (const userId of pod.offlineUserIds) {
      const [user, roomIds] = await Promise.all([
        deps.users.find(userId),
        deps.memberships.activeRoomIdsOf(userId),
      ]);
      if (!user) continue;
      const mask = nicknameMask(user.nickname);
      for (const roomId of roomIds) {
        nsp.to(roomChannel(roomId)).emit('presence', { roomId, userId, nicknameMask: mask, online: false });
      }
      offline += 1;
    }
    deps.logger.warn({ podId: pod.podId, offline: pod.offlineUserIds.length }, 'dead pod collected');
  }
  return { deadPods: dead.length, offline };
}
