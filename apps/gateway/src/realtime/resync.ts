import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { onReconnected } from '../infrastructure/redis-clients.ts';
import type { ChatNamespace } from './types.ts';

/**
 * PROTOCOL [ext] `resync`: while this pod's Redis subscriber was disconnected (Redis restarted,
 * the connection was killed), broadcasts from other pods went nowhere — pub/sub keeps nothing
 * for absent subscribers. ioredis re-subscribes by itself on reconnect; once the subscriptions
 * are live again, this tells the pod's own sockets to fetch `after` their last message, so
 * they are whole again without waiting for the next `seq` jump.
 */
export function resyncAfterResubscribe(sub: Redis, nsp: ChatNamespace, logger: Logger): void {
  onReconnected(sub, () => {
    // ioredis queued SUBSCRIBE/PSUBSCRIBE before emitting `ready`; a PING answered after them
    // means the subscriptions are in place, so nothing published from now on is missed.
    sub.ping().then(
      () => {
        logger.warn({ sockets: nsp.sockets.size }, 'redis subscriber back: asking local sockets to resync');
        // `local`: every pod resyncs its own sockets when its own subscriber comes back.
        nsp.local.emit('resync', {});
      },
      (error: unknown) => logger.warn({ err: error }, 'resync ping failed; the next reconnect retries'),
    );
  });
}
