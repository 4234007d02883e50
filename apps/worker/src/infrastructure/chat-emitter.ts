import { Emitter } from '@socket.io/redis-emitter';
import { CHAT_NAMESPACE, type ServerToClientEvents } from '@chat/protocol';

/**
 * Emits to the gateways' sockets through the Redis adapter's channels, typed against the same
 * server event map the gateway uses: an event or payload the clients do not know fails to compile.
 */
export type ChatEmitter = Emitter<ServerToClientEvents>;

/** The chat namespace of `emitter`, the only one the gateways serve. */
export function chatNamespace(emitter: ChatEmitter): ChatEmitter {
  return emitter.of(CHAT_NAMESPACE);
}

export function createChatEmitter(
  client: { publish(channel: string, message: string | Buffer): Promise<number> },
  redisPrefix: string,
): ChatEmitter {
  return new Emitter<ServerToClientEvents>(client, { key: `${redisPrefix}:socket.io` });
}
