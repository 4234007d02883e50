import { describe, expect } from 'vitest';
import type { NewMessagePayload } from '@chat/protocol';
import { connect, createRoom, emitAck, makeUser, record, request, sleep, spawnGateway, type TestSocket } from '@chat/testing';
import { clusterTest, podsSubscribed as subscribers, type TestCluster } from '../support/index.ts';

/**
 * Three pods, one killed (SIGKILL) while all three carry a room's traffic. The two others go on
 * without a lost or doubled message; the dead pod's clients come back on a live pod (as a load
 * balancer would send them), are in the room again at once and complete from history; the dead
 * pod's bus subscription is gone; and presence neither flaps for the users who came back nor
 * misses the one who did not (announced offline by the worker once the pod is found dead).
 */
const it = clusterTest({ pods: 2, ownDatabase: true });
let cluster: TestCluster;
it.beforeAll(({ cluster: started }) => {
  cluster = started;
});
const podsSubscribed = (roomId: string) => subscribers(cluster, roomId);

type Stored = { messageId: string; seq: number };

/** The room's whole history, page by page (newest first, `before` the oldest seen). */
async function allHistory(url: string, roomId: string): Promise<Stored[]> {
  const all: Stored[] = [];
  let before = '';
  for (let page = 0; page < 50; page++) {
    const { body } = await request<{ messages: Stored[]; hasMore: boolean }>(url, 'GET', `/api/rooms/${roomId}/messages?limit=100${before}`);
    all.push(...body.messages);
    if (!body.hasMore || body.messages.length === 0) break;
    before = `&before=${body.messages[body.messages.length - 1]!.messageId}`;
  }
  return all;
}

async function join(socket: TestSocket, roomId: string) {
  const ack = await emitAck(socket, 'join-room', { roomId });
  if (!ack.ok) throw new Error(`join failed: ${JSON.stringify(ack)}`);
}

describe('three pods, one dies', () => {
  it('the others lose nothing, its clients come back elsewhere complete, presence tells the truth', { timeout: 90_000 }, async ({ startWorker }) => {
    const [a, b] = cluster.pods.map((pod) => pod.url) as [string, string];
    await startWorker({ PRESENCE_GC_INTERVAL_MS: '500' });
    const doomed = await spawnGateway(cluster, { POD_NAME: 'doomed' });
    const alice = await makeUser('앨리스');
    const bob = await makeUser('밥');
    const carol = await makeUser('캐럴');
    const erin = await makeUser('에린');
    const { roomId } = await createRoom(a, alice);

    const aliceA = await connect(a, alice.token);
    const bobB = await connect(b, bob.token);
    let carolC = await connect(doomed.url, carol.token);
    const erinC = await connect(doomed.url, erin.token);
    for (const socket of [aliceA, bobB, carolC, erinC]) await join(socket, roomId);
    for (let waited = 0; (await podsSubscribed(roomId)) !== 3 && waited < 5000; waited += 50) await sleep(50);
    expect(await podsSubscribed(roomId)).toBe(3);

    const aliceHeard = record(aliceA, 'new-message');
    const alicePresence = record(aliceA, 'presence');
    const carolHeard: NewMessagePayload[] = record(carolC, 'new-message');
    const acked: { messageId: string; seq: number }[] = [];
    let sending = true;
    const sender = async (socket: () => TestSocket, name: string) => {
      for (let i = 0; sending && i < 400; i++) {
        const current = socket();
        if (current.connected) {
          const ack = await emitAck<{ messageId: string; seq: number }>(current, 'send-message', { roomId, type: 'text', content: `${name}-${i}` }, 3000).catch(() => null);
          if (ack?.ok) acked.push(ack.data);
        }
        await sleep(40);
      }
    };
    const senders = [sender(() => aliceA, 'alice'), sender(() => bobB, 'bob'), sender(() => carolC, 'carol')];
    await sleep(1000);

    await doomed.kill('SIGKILL');
    const killedAt = Date.now();
    // Carol comes back on pod B (Erin does not come back): in the room again at once, and she
    // asks for what she missed after the last message she saw (PROTOCOL §7 [ext] `after`).
    const lastCarolSaw = carolHeard.reduce((latest, m) => (m.seq > latest.seq ? m : latest));
    carolC = await connect(b, carol.token);
    const carolAfter = record(carolC, 'new-message');
    const catchUp = await request<{ messages: Stored[]; hasMore: boolean }>(
      b,
      'GET',
      `/api/rooms/${roomId}/messages?after=${lastCarolSaw.messageId}&limit=100`,
      { token: carol.token },
    );
    expect(catchUp.status).toBe(200);
    expect(catchUp.body.hasMore).toBe(false);
    await sleep(1500);
    sending = false;
    await Promise.all(senders);
    await sleep(500);

    // The dead pod's subscription went with its connection.
    expect(await podsSubscribed(roomId)).toBe(2);

    // Every acknowledged message is stored once, in one gap-free numbering.
    const history = await allHistory(b, roomId);
    const seqs = history.map((m) => m.seq).sort((x, y) => x - y);
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1));
    const stored = new Set(history.map((m) => m.messageId));
    expect(acked.filter((m) => !stored.has(m.messageId))).toEqual([]);
    expect(acked.length).toBeGreaterThan(40);

    // Alice (pod A) heard every acknowledged message sent after she started listening, once.
    const aliceIds = aliceHeard.map((m) => m.messageId);
    expect(new Set(aliceIds).size).toBe(aliceIds.length);
    const firstSeqAliceHeard = Math.min(...aliceHeard.map((m) => m.seq));
    expect(acked.filter((m) => m.seq >= firstSeqAliceHeard && !aliceIds.includes(m.messageId))).toEqual([]);

    // Carol, back on pod B, is complete: what she heard before the crash, her catch-up and what
    // she heard live since cover every message from the first she heard on.
    const covered = new Set([...carolHeard, ...catchUp.body.messages, ...carolAfter].map((m) => m.messageId));
    const firstSeqCarolHeard = Math.min(...carolHeard.map((m) => m.seq));
    expect(history.filter((m) => m.seq >= firstSeqCarolHeard && !covered.has(m.messageId))).toEqual([]);
    expect(carolAfter.length).toBeGreaterThan(0);

    // Presence: once the worker finds the pod dead (15 s after its last heartbeat), Erin, who did
    // not come back, is announced offline; Carol, back on pod B, is not.
    const deadline = killedAt + 40_000;
    while (Date.now() < deadline && !alicePresence.some((e) => e.userId === erin.userId)) await sleep(200);
    expect(alicePresence.filter((e) => e.userId === erin.userId).map((e) => e.online)).toEqual([false]);
    await sleep(1000);
    expect(alicePresence.filter((e) => e.userId === carol.userId)).toEqual([]);
  });
});
