import { describe, expect } from 'vitest';
import { createRoom, emitAck, makeUser, nextEvent } from '@chat/testing';
import { clusterTest } from '../support/index.ts';

/** Issue 5's /metrics: what an SRE graphs moves with the traffic, by event and code. */

const it = clusterTest({ pods: 1 });

async function scrape(url: string): Promise<Map<string, number>> {
  const response = await fetch(`${url}/metrics`);
  expect(response.status).toBe(200);
  const samples = new Map<string, number>();
  for (const line of (await response.text()).split('\n')) {
    const match = /^([a-z_]+(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (match) samples.set(match[1]!, Number(match[2]));
  }
  return samples;
}
const delta = (before: Map<string, number>, after: Map<string, number>, name: string) => (after.get(name) ?? 0) - (before.get(name) ?? 0);

describe('/metrics', () => {
  it('counts received events, broadcasts, persisted messages, acks and errors', async ({ url, connect }) => {
    const user = await makeUser('박지성');
    const room = await createRoom(url, user);
    const socket = await connect(url, user.token);
    expect((await emitAck(socket, 'join-room', { roomId: room.roomId })).ok).toBe(true);
    const before = await scrape(url);

    const delivered = nextEvent(socket, 'new-message');
    expect((await emitAck(socket, 'send-message', { roomId: room.roomId, type: 'text', content: '측정' })).ok).toBe(true);
    await delivered;
    expect((await emitAck(socket, 'send-message', { roomId: room.roomId, type: 'text', content: '' })).ok).toBe(false);
    const after = await scrape(url);

    expect(delta(before, after, 'chat_events_received_total{event="send-message"}')).toBe(2);
    expect(delta(before, after, 'chat_broadcasts_total{event="new-message"}')).toBe(1);
    expect(delta(before, after, 'chat_messages_persisted_total')).toBe(1);
    expect(delta(before, after, 'chat_persist_batch_size_count')).toBe(1);
    expect(delta(before, after, 'chat_ack_duration_seconds_count{event="send-message"}')).toBe(2);
    expect(delta(before, after, 'chat_errors_total{event="send-message",code="CONTENT_REQUIRED"}')).toBe(1);
  });
});
