import type { BusClient } from '@chat/bus';

/**
 * Fault injection for tests of the subscription barrier (realtime/subscription-barrier.ts):
 * every SSUBSCRIBE of the bus subscriber is held `delayMs` before it is sent, as over a slow
 * link to a distant bus shard. Off unless FAULT_BUS_SUBSCRIBE_DELAY_MS is set; production never
 * sets it. Installed before the subscription tracker, so the tracker waits for the delayed
 * command's real answer from Redis.
 */
export function delayBusSubscribes(sub: BusClient, delayMs: number): void {
  if (delayMs <= 0) return;
  const target = sub as unknown as { ssubscribe: (...args: unknown[]) => Promise<unknown> };
  const original = target.ssubscribe.bind(sub);
  target.ssubscribe = (...args) =>
    new Promise<void>((resolve) => setTimeout(resolve, delayMs).unref()).then(() => original(...args));
}
