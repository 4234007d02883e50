import { Emitter } from '@socket.io/redis-emitter';
import {
  busChannelPrefix,
  createShardedEmitter,
  type BroadcastTarget,
  type BusAdapterKind,
  type BusPublishClient,
  type ShardedEmitter,
} from '@chat/bus';
import { CHAT_NAMESPACE, type ServerToClientEvents } from '@chat/protocol';

/**
 * Emits to the gateways' sockets on the chat namespace through the bus, typed against the same
 * server event map the gateway uses: an event or payload the clients do not know fails to
 * compile. With the sharded adapter (@chat/bus createShardedEmitter) a room's event goes to the
 * room's channel, heard only by pods holding a member; membership moves go to the main channel.
 */
export type ChatEmitter = ShardedEmitter<ServerToClientEvents>;

export function createChatEmitter(
  bus: BusPublishClient & { publish(channel: string, message: string | Buffer): Promise<number> },
  options: { redisPrefix: string; adapter: BusAdapterKind; onError: (error: unknown) => void },
): ChatEmitter {
  const channelPrefix = busChannelPrefix(options.redisPrefix);
  if (options.adapter === 'sharded') {
    return createShardedEmitter<ServerToClientEvents>(bus, { channelPrefix, nsp: CHAT_NAMESPACE, onError: options.onError });
  }
  return classicChatEmitter(bus, channelPrefix, options.onError);
}

/**
 * BUS_ADAPTER=classic (benchmarks only): @socket.io/redis-emitter, which speaks the classic
 * adapter's PUBLISH format, behind the same interface. It fires its publishes and drops their
 * promises, so failures are caught at the client and reported, and each emit resolves true.
 */
function classicChatEmitter(
  bus: { publish(channel: string, message: string | Buffer): Promise<number> },
  channelPrefix: string,
  onError: (error: unknown) => void,
): ChatEmitter {
  const client = { publish: (channel: string, message: string | Buffer) => bus.publish(channel, message).catch((error: unknown) => (onError(error), 0)) };
  const nsp = new Emitter<ServerToClientEvents>(client, { key: channelPrefix }).of(CHAT_NAMESPACE);
  const target = (rooms: readonly string[], except: readonly string[]): BroadcastTarget<ServerToClientEvents> => {
    const operator = () => nsp.to([...rooms]).except([...except]);
    return {
      except: (room) => target(rooms, [...except, ...(typeof room === 'string' ? [room] : room)]),
      emit: (event, ...args) => {
        (operator().emit as (event: string, ...args: unknown[]) => boolean)(event, ...args);
        return Promise.resolve(true);
      },
      socketsJoin: (joined) => (operator().socketsJoin(typeof joined === 'string' ? joined : [...joined]), Promise.resolve(true)),
      socketsLeave: (left) => (operator().socketsLeave(typeof left === 'string' ? left : [...left]), Promise.resolve(true)),
      disconnectSockets: (close = false) => (operator().disconnectSockets(close), Promise.resolve(true)),
    };
  };
  const to = (room: string | readonly string[]) => target(typeof room === 'string' ? [room] : [...room], []);
  return { to, in: to };
}
