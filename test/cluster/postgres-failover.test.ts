import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { emitAck, request, sleep } from '@chat/testing';
import { postgresServerUnavailable, startPostgresPair, type LocalPostgresPair } from '@chat/testing/postgres-servers';
import { membersOnTwoPods, readWholeHistory, shortRoomExpires, startAppsOn, type AppsOnServers, type TestCluster } from '../support/index.ts';

/**
 * Postgres failover through a DATABASE_URL that lists several hosts: a primary with a
 * synchronous hot standby, the URL naming the standby FIRST. Every connection of the two pods
 * and the worker must pass over the standby to the primary (a pod that settled on the standby
 * could not write at all), then, once the primary dies and the standby is promoted, find the
 * promoted one by itself. Under a steady stream of sends across the failover: every
 * acknowledged message is in the history once, with gap-free `seq`, retries of unanswered sends
 * stored once; readiness comes back; the worker's jobs reach the new primary too.
 */
const unavailable = postgresServerUnavailable();
if (unavailable) console.warn(`postgres-failover.test.ts skipped: ${unavailable}`);

describe.skipIf(unavailable !== null)('Postgres failover through a multi-host DATABASE_URL', () => {
  let pair: LocalPostgresPair;
  let apps: AppsOnServers;
  let cluster: TestCluster;

  beforeAll(async () => {
    pair = await startPostgresPair();
    const url = await pair.migratedDatabase('chat');
    // One user sends the whole stream, past the protocol's 30 a minute.
    apps = await startAppsOn({ DATABASE_URL: url, MESSAGE_RATE_LIMIT_PER_MINUTE: '100000' }, { worker: 'postgres-failover-worker' });
    cluster = apps.cluster;
  }, 120_000);

  afterAll(async () => {
    await apps?.stop();
    await pair?.close();
  }, 60_000);

  it('keeps every acknowledged send over a failover, and the pods and the worker follow the primary', { timeout: 120_000 }, async () => {
    const [a, b] = cluster.pods;
    const { alice, roomId, socketA, socketB, heardByBob } = await membersOnTwoPods(cluster);

    // One send at a time, each retried with its clientMessageId until acknowledged (a client
    // that lost an answer resends the same message): 12 before the failover, a stream across it,
    // 6 after it.
    const acked: { content: string; seq: number }[] = [];
    let retries = 0;
    const sendUntilAcked = async (content: string) => {
      const deadline = Date.now() + 45_000;
      while (Date.now() < deadline) {
        const ack = (await emitAck(socketA, 'send-message', { roomId, type: 'text', content, clientMessageId: content }, 3000).catch(
          () => null,
        )) as { ok: boolean; data?: { seq: number } } | null;
        if (ack?.ok && ack.data) {
          acked.push({ content, seq: ack.data.seq });
          return;
        }
        retries++;
        await sleep(200);
      }
      throw new Error(`${content} was never acknowledged`);
    };
    for (let i = 0; i < 12; i++) await sendUntilAcked(`before-${i}`);
    await expect.poll(() => heardByBob.length).toBe(12);

    // Sends go on, one after another, while the primary dies and until the standby is promoted
    // (at most 300).
    let failedOver = false;
    const during = (async () => {
      for (let i = 0; i < 300 && !failedOver; i++) await sendUntilAcked(`during-${i}`);
    })();
    await sleep(100);
    await pair.failOver();
    failedOver = true;
    await during;
    for (let i = 0; i < 6; i++) await sendUntilAcked(`after-${i}`);

    for (const pod of [a!, b!]) {
      await expect.poll(async () => (await request(pod.url, 'GET', '/readyz')).status, { timeout: 30_000, interval: 250 }).toBe(200);
    }
    const stored = await readWholeHistory(b!.url, roomId);
    // Nothing acknowledged was lost, nothing stored twice, and the numbering has no gap.
    expect(stored.map((message) => message.content).sort()).toEqual(acked.map((message) => message.content).sort());
    expect(stored.map((message) => message.seq)).toEqual(stored.map((_, index) => index + 1));
    for (const { content, seq } of acked) expect(stored.find((message) => message.content === content)?.seq).toBe(seq);
    // Messages sent after the failover still cross pods.
    await expect.poll(() => heardByBob.map((message) => message.content)).toContain('after-5');

    // The worker's Postgres connection followed the primary too: a room created now expires on
    // time and its member hears it.
    await shortRoomExpires(a!.url, alice, socketB);
    console.info(`postgres failover: ${acked.length} sends acknowledged, ${retries} resends`);
  });
});
