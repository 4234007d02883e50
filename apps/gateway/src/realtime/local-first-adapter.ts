import { Adapter, MessageType, type BroadcastOptions } from 'socket.io-adapter';

type AdapterFactory = (nsp: unknown) => Adapter;

/** ClusterAdapter's encoding of a target on the wire. */
const encodeOptions = (opts: BroadcastOptions) => ({ rooms: [...opts.rooms], except: [...(opts.except ?? [])], flags: opts.flags });

/**
 * socket.io-adapter's ClusterAdapter (under the sharded adapter) awaits its publish before it
 * delivers a broadcast to the pod's own sockets: every local delivery waits a bus round trip,
 * and while the bus is away (ioredis retries for ~20 s) the pod's own members hear nothing. The
 * classic adapter published and delivered locally at once; this restores that, for broadcasts
 * and for membership moves. The message is encoded by the synchronous part of `publish` before
 * the local delivery touches the packet.
 * Written against socket.io-adapter 2.5.9's ClusterAdapter (pinned with the adapter, see
 * @chat/bus SHARDED_ADAPTER_VERSION and its contract test).
 */
export function deliverLocallyFirst(factory: AdapterFactory): AdapterFactory {
  // A function, not an arrow: Socket.IO calls the adapter option with `new`, and an object a
  // constructor returns replaces the one `new` made.
  return function localFirstAdapter(nsp: unknown) {
    const adapter = factory(nsp);
    // ClusterAdapter#publish: fire and forget (it catches its own failures).
    const publish = (adapter as unknown as { publish(message: object): void }).publish.bind(adapter);
    // Membership moves likewise: ClusterAdapter moved this pod's own sockets only once Redis had
    // answered the publish, so during a bus outage a move made here came into effect here at
    // the reconnection, after the pod had checked its sockets against the database
    // (membership-reconciler.ts), putting them back where the database no longer says.
    adapter.addSockets = (opts: BroadcastOptions, rooms: string[]) => {
      if (!opts.flags?.local) publish({ type: MessageType.SOCKETS_JOIN, data: { opts: encodeOptions(opts), rooms } });
      Adapter.prototype.addSockets.call(adapter, opts, rooms);
    };
    adapter.delSockets = (opts: BroadcastOptions, rooms: string[]) => {
      if (!opts.flags?.local) publish({ type: MessageType.SOCKETS_LEAVE, data: { opts: encodeOptions(opts), rooms } });
      Adapter.prototype.delSockets.call(adapter, opts, rooms);
    };
    adapter.broadcast = (packet: unknown, opts: BroadcastOptions) => {
      if (!opts.flags?.local) {
        publish({ type: MessageType.BROADCAST, data: { packet, opts: encodeOptions(opts) } });
      }
      Adapter.prototype.broadcast.call(adapter, packet, opts);
    };
    return adapter;
  };
}
