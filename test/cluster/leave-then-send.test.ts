import postgres from 'postgres';
import type { Socket } from 'socket.io-client';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import type { AckResponse } from '@chat/protocol';
import {
  closeAllSockets,
  connect,
  createRoom,
  emitAck,
  makeUser,
  nextEvent,
  record,
  sleep,
  startTcpRelay,
  uniquePrefix,
  type TcpRelay,
  type TestSocket,
} from '@chat/testing';
import { startCluster, type TestCluster } from '../support/index.ts';

/**
 * PROTOCOL §4: a send requires membership, and a user is a member until `leave-room`. One user,
 * two devices on two pods: device 1 on pod A leaves the room and, inside the leave's ack callback,
 * device 2 on pod B sends to it. The leave moves the user's sockets out of the room through the
 * bus, and is answered without waiting for the other pods to have done it: pod B may still have
 * device 2 in the room's channel when the send arrives, so the socket's rooms say "member". The
 * send must still be refused, store nothing, take no `seq` and reach nobody. Review found 9 of 25
 * such sends stored and broadcast between pods in processes of their own.
 *
 * Here the pods share one process, where the bus usually wins that race (1 of 80 sends was
 * stored without the fix); pod B reaches Redis through a relay that holds Redis's replies back
 * BUS_DELAY_MS, so that it hears the leave's move late every time, as a busy pod or a slow path
 * does. (Without the fix every round's send was stored.)
 */

const ROUNDS = 10;
const BUS_DELAY_MS = 40;
/** Cross-pod delivery goes through Redis: give a broadcast this long to show. */
const QUIET_MS = 200;

let relay: TcpRelay;
let podA: TestCluster;
let podB: TestCluster;
let sql: postgres.Sql;

beforeAll(async () => {
  const redisUrl = inject('redisUrl');
  const prefix = uniquePrefix('leave');
  relay = await startTcpRelay(redisUrl, { replyDelayMs: BUS_DELAY_MS });
  // The bus on REDIS_URL whatever the run's TEST_BUS, so that pod B's goes through the relay.
  podA = await startCluster(1, { REDIS_URL: redisUrl, REDIS_PREFIX: prefix, POD_NAME: 'leave-pod-a', REDIS_BUS_CLUSTER_NODES: '' });
  podB = await startCluster(1, { REDIS_URL: relay.url, REDIS_PREFIX: prefix, POD_NAME: 'leave-pod-b', REDIS_BUS_CLUSTER_NODES: '' });
  sql = postgres(podA.databaseUrl, { max: 1, onnotice: () => {} });
});
afterAll(async () => {
  closeAllSockets();
  await podA?.close();
  await podB?.close();
  await relay?.close();
  await sql?.end();
});

/** The room's messages and its `last_seq`. */
async function stateOf(roomId: string) {
  const rows = await sql<{ content: string }[]>`select content from messages where room_id = ${roomId} order by seq`;
  const [room] = await sql<{ last_seq: number }[]>`select last_seq::int from rooms where id = ${roomId}`;
  return { contents: rows.map((row) => row.content), lastSeq: room!.last_seq };
}

/** Emits `leave-room` on `leaver` and, inside its ack callback, `send-message` on `sender`. */
function leaveThenSend(leaver: TestSocket, sender: TestSocket, roomId: string, content: string) {
  return new Promise<{ left: AckResponse<unknown>; sent: AckResponse<unknown> }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no answer within 5 s')), 5000);
    (leaver as unknown as Socket).emit('leave-room', { roomId }, (left: AckResponse<unknown>) => {
      (sender as unknown as Socket).emit('send-message', { roomId, type: 'text', content }, (sent: AckResponse<unknown>) => {
        clearTimeout(timer);
        resolve({ left, sent });
      });
    });
  });
}

it('a send from the device on pod B right after a leave on pod A is answered: refused NOT_A_MEMBER, nothing stored or broadcast', { timeout: 60_000 }, async () => {
  const A = podA.pods[0]!.url;
  const B = podB.pods[0]!.url;
  const user = await makeUser('김철수');
  const device1 = await connect(A, user.token);
  const device2 = await connect(B, user.token);
  for (let round = 0; round < ROUNDS; round++) {
    const owner = await makeUser('방장');
    const { roomId } = await createRoom(A, owner);
    const ownerA = await connect(A, owner.token);
    expect((await emitAck(ownerA, 'join-room', { roomId })).ok).toBe(true);
    expect((await emitAck(device1, 'join-room', { roomId })).ok).toBe(true);
    // Device 2 is in the room's channel on pod B, and pod B subscribed to the room's bus
    // channel (after the join's move reached it), once it receives the room's messages.
    for (let hello = 0; ; hello++) {
      const reachedDevice2 = nextEvent(device2, 'new-message', 500);
      expect((await emitAck(ownerA, 'send-message', { roomId, type: 'text', content: '어서 와요' })).ok).toBe(true);
      const reached = await reachedDevice2.then(() => true, () => false);
      if (reached) break;
      if (hello === 10) throw new Error('device 2 never received the room');
    }
    const before = await stateOf(roomId);

    const ownerHeard = record(ownerA, 'new-message');
    const device2Heard = record(device2, 'new-message');
    const content = `떠난 뒤 ${round}`;
    const { left, sent } = await leaveThenSend(device1, device2, roomId, content);
    expect(left).toEqual({ ok: true, data: { roomId, changeSeq: expect.any(Number) } });
    expect(sent, `round ${round}`).toMatchObject({ ok: false, error: { code: 'NOT_A_MEMBER' } });

    // Nothing stored, no seq taken: the room's messages and counter are as before the leave.
    expect(await stateOf(roomId)).toEqual(before);
    expect(before.contents.every((content) => content === '어서 와요')).toBe(true);
    await sleep(QUIET_MS);
    // (A greeting that took long on the way may still come: only the refused message counts.)
    expect(ownerHeard.filter((message) => message.content === content)).toEqual([]);
    expect(device2Heard.filter((message) => message.content === content)).toEqual([]);
    ownerA.close();
  }
});
