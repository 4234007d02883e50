/**
 * Scenario 8's checker: what a webhook receiver got against the rooms' change feeds (the
 * changes route is the truth). After dedupe by (roomId, changeSeq) the receiver must hold every
 * change of every room exactly once — no gap, every acknowledged message's `new-message` among
 * them — and the only duplicates allowed are redeliveries of the same event with the same body.
 */
import type { RoomChange } from '@chat/protocol';
import { http, type SendOp } from './clients.ts';
import { sleep } from './infra.ts';
import type { WebhookReceiver } from './webhook-receiver.ts';

export interface WebhookCheck {
  /** Changes of the feed never received, plus acknowledged messages missing from the feed. */
  lost: number;
  /** After dedupe: one (roomId, changeSeq) received with different bodies, or one message under two changes. */
  duplicated: number;
  redeliveries: number;
  deliveries: number;
  unverified: number;
  /** Events that differ from the changes route's, and rooms whose first arrivals were out of order. */
  problems: string[];
  notes: string[];
}

/** Each room's whole feed, paged from the changes route; `known` is extended, not refetched. */
async function readFeeds(url: string, token: string, roomIds: string[], known: Map<string, RoomChange[]>): Promise<void> {
  for (const roomId of roomIds) {
    const feed = known.get(roomId) ?? [];
    known.set(roomId, feed);
    for (let page = 0; page < 1000; page++) {
      const after = feed.at(-1)?.changeSeq ?? 0;
      const { status, body } = await http<{ changes: RoomChange[]; hasMore: boolean }>(url, 'GET', `/api/rooms/${roomId}/changes?after=${after}&limit=100`, { token });
      if (status !== 200) throw new Error(`changes route: ${status}`);
      feed.push(...body.changes);
      if (!body.hasMore) break;
    }
  }
}

const key = (event: { roomId: string; changeSeq: number }) => `${event.roomId}:${event.changeSeq}`;

function received(receiver: WebhookReceiver, rooms: Set<string>): Map<string, RoomChange> {
  const byKey = new Map<string, RoomChange>();
  for (const delivery of receiver.deliveries) for (const event of delivery.events) if (rooms.has(event.roomId) && !byKey.has(key(event))) byKey.set(key(event), event);
  return byKey;
}

/**
 * Waits (bounded by `timeoutMs`) until the receiver holds, for every room, every changeSeq from
 * 1 to the room's latest, then checks what it got. Returns how long the wait took (or -1).
 */
export async function awaitWebhooks(
  receiver: WebhookReceiver,
  url: string,
  token: string,
  roomIds: string[],
  timeoutMs: number,
): Promise<{ waitedMs: number; feeds: Map<string, RoomChange[]> }> {
  const started = Date.now();
  const rooms = new Set(roomIds);
  const feeds = new Map<string, RoomChange[]>();
  while (Date.now() - started < timeoutMs) {
    await readFeeds(url, token, roomIds, feeds);
    const got = received(receiver, rooms);
    if ([...feeds.values()].every((feed) => feed.every((change) => got.has(key(change))))) return { waitedMs: Date.now() - started, feeds };
    await sleep(500);
  }
  await readFeeds(url, token, roomIds, feeds);
  return { waitedMs: -1, feeds };
}

export function checkWebhooks(receiver: WebhookReceiver, feeds: Map<string, RoomChange[]>, ops: SendOp[]): WebhookCheck {
  const rooms = new Set(feeds.keys());
  const problems: string[] = [];
  const notes: string[] = [];
  const deliveries = receiver.deliveries.filter((delivery) => !delivery.verified || delivery.events.some((event) => rooms.has(event.roomId)));
  const unverified = receiver.deliveries.filter((delivery) => !delivery.verified).length;

  // Dedupe: the first arrival of each (roomId, changeSeq); later ones must be the same body.
  const first = new Map<string, string>();
  const conflicting = new Set<string>();
  let redeliveries = 0;
  const arrivalOrder = new Map<string, number[]>();
  for (const delivery of deliveries) {
    for (const event of delivery.events) {
      if (!rooms.has(event.roomId)) continue;
      const body = JSON.stringify(event);
      const seen = first.get(key(event));
      if (seen === undefined) {
        first.set(key(event), body);
        arrivalOrder.set(event.roomId, [...(arrivalOrder.get(event.roomId) ?? []), event.changeSeq]);
      } else if (seen === body) redeliveries += 1;
      else conflicting.add(key(event));
    }
  }
  for (const bad of [...conflicting].slice(0, 5)) problems.push(`webhook: ${bad} received with different bodies`);

  // Against the truth: every change of the feed received, with the route's body.
  let missingChanges = 0;
  let differing = 0;
  for (const [roomId, feed] of feeds) {
    feed.forEach((change, index) => {
      if (change.changeSeq !== index + 1 && problems.length < 20) problems.push(`changes route: ${roomId} not gap-free at ${change.changeSeq}`);
      const got = first.get(key(change));
      if (got === undefined) missingChanges += 1;
      else if (got !== JSON.stringify(change)) {
        differing += 1;
        if (problems.length < 20) problems.push(`webhook: ${key(change)} differs from the changes route`);
      }
    });
    const order = arrivalOrder.get(roomId) ?? [];
    if (order.some((seq, index) => index > 0 && seq < order[index - 1]!)) problems.push(`webhook: room ${roomId} first arrivals out of changeSeq order`);
  }
  if (missingChanges > 0) problems.push(`webhook: ${missingChanges} change(s) of the feed never received`);

  // Every acknowledged message is a `new-message` change, exactly once.
  const messageChanges = new Map<string, number>();
  for (const body of first.values()) {
    const event = JSON.parse(body) as RoomChange;
    if (event.event !== 'new-message') continue;
    const messageId = (event.payload as { messageId?: string }).messageId ?? '?';
    messageChanges.set(messageId, (messageChanges.get(messageId) ?? 0) + 1);
  }
  const inFeed = new Set(
    [...feeds.values()].flat().filter((change) => change.event === 'new-message').map((change) => (change.payload as { messageId?: string }).messageId),
  );
  let ackedNotInFeed = 0;
  for (const op of ops) {
    if (!op.acked || inFeed.has(op.acked.messageId)) continue;
    ackedNotInFeed += 1;
    if (problems.length < 20) problems.push(`webhook: acked message ${op.acked.messageId} is in no change of the feed`);
  }
  const messageTwice = [...messageChanges.values()].filter((count) => count > 1).reduce((sum, count) => sum + count - 1, 0);
  if (messageTwice > 0) problems.push(`webhook: ${messageTwice} message(s) received under more than one changeSeq`);
  if (unverified > 0) problems.push(`webhook: ${unverified} POST(s) failed the example's signature check`);

  const changes = [...feeds.values()].reduce((sum, feed) => sum + feed.length, 0);
  notes.push(
    `webhook: ${changes} changes in ${feeds.size} rooms, ${first.size} received after dedupe in ${deliveries.length} POSTs ` +
      `(all signatures ${unverified === 0 ? 'valid' : 'NOT valid'}); ${redeliveries} redelivered event(s), identical bodies` +
      (differing > 0 ? `; ${differing} differ from the route` : ''),
  );
  return {
    lost: missingChanges + ackedNotInFeed,
    duplicated: conflicting.size + messageTwice,
    redeliveries,
    deliveries: deliveries.length,
    unverified,
    problems,
    notes,
  };
}
