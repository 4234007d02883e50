import { expect } from 'vitest';
import { emitAck, request, sleep, type TestSocket } from '@chat/testing';

/**
 * A stream of sends from one socket across a fault, as a careful client sends: one at a time,
 * each retried with its clientMessageId until acknowledged (a lost answer must not store it
 * twice). At most `max` messages, 50 ms apart, until `stop()`; `acked` holds the contents
 * acknowledged so far.
 */
export function startAckedStream(socket: TestSocket, roomId: string, label: string, max = 300): { acked: Set<string>; stop(): Promise<void> } {
  const acked = new Set<string>();
  let streaming = true;
  const done = (async () => {
    for (let index = 0; streaming && index < max; index++) {
      const content = `${label} ${index}`;
      for (let attempt = 0; attempt < 20 && !acked.has(content); attempt++) {
        const answer = await emitAck(socket, 'send-message', { roomId, type: 'text', content, clientMessageId: `${label}-${index}` }, 2000).catch(() => null);
        if (answer?.ok) acked.add(content);
        else await sleep(100);
      }
      await sleep(50);
    }
  })();
  return {
    acked,
    async stop() {
      streaming = false;
      await done;
    },
  };
}

export interface StoredMessage {
  messageId: string;
  content: string;
  seq: number;
}

/** A room's whole history through the REST route, oldest first (pages of 100, at most `pages`). */
export async function readWholeHistory(url: string, roomId: string, pages = 10): Promise<StoredMessage[]> {
  const stored: StoredMessage[] = [];
  for (let page = 0, before = ''; page < pages; page++) {
    const history = await request<{ messages: StoredMessage[]; hasMore: boolean }>(url, 'GET', `/api/rooms/${roomId}/messages?limit=100${before ? `&before=${before}` : ''}`);
    expect(history.status).toBe(200);
    stored.push(...history.body.messages);
    if (!history.body.hasMore) break;
    before = history.body.messages.reduce((oldest, message) => (message.seq < oldest.seq ? message : oldest)).messageId;
  }
  return stored.sort((x, y) => x.seq - y.seq);
}

/** Every acknowledged content stored exactly once, and the room's `seq` without a gap. */
export function expectAckedStoredOnce(stored: readonly StoredMessage[], acked: Iterable<string>): void {
  const contents = stored.map((message) => message.content);
  for (const content of acked) expect(contents.filter((candidate) => candidate === content), content).toHaveLength(1);
  const seqs = stored.map((message) => message.seq);
  expect(seqs).toEqual(seqs.map((_, index) => seqs[0]! + index));
}
