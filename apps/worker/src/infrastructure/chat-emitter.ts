import { createShardedEmitter, busChannelPrefix, type BusPublishClient, type ShardedEmitter } from '@chat/bus';
import { CHAT_NAMESPACE, type ServerToClientEvents } from '@chat/protocol';

/**
 * Emits to the gateways' sockets on the chat namespace through the sharded adapter's channels
 * (@chat/bus createShardedEmitter), typed against the same server event map the gateway uses:
 * an event or payload the clients do not know fails to compile. A room's event goes to the
 * room's channel, heard only by pods holding a member; membership moves go to the main channel.
 */
export type ChatEmitter = ShardedEmitter<ServerToClientEvents>;

export function createChatEmitter(
  bus: BusPublishClient,
  redisPrefix: string,
  onError: (error: unknown) => void,
): ChatEmitter {
  return createShardedEmitter<ServerToClientEvents>(bus, {
    channelPrefix: busChannelPrefix(redisPrefix),
    nsp: CHAT_NAMESPACE,
    onError,
  });
}
