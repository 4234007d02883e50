import { pino } from 'pino';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { ERRORS } from '@chat/protocol';
import { closeAllSockets, connect, createRoom, emitAck, makeUser, request, sleep, startTcpRelay, type HttpResult } from '@chat/testing';
import { startCluster } from '../support/index.ts';

/**
 * Postgres gone without a reset (a network partition, a failover that moved the Service while
 * the old connections hang: packets dropped, no RST) for a gateway pod's general pool: postgres.js
 * has no query timeout of its own and the server's statement_timeout is never heard, so REST
 * reads, joins, the handshake's session read and /readyz hung until the TCP stack gave up
 * (minutes), holding every connection of the pool, and the pod stayed useless after Postgres was
 * back. The pod reaches Postgres through a relay that is frozen (every socket kept open, every
 * byte dropped), then lets new connections through again, the frozen ones staying dead.
 */

/** The bound the pod is given (above its statement timeout, as the config requires). */
const STALL_MS = 3000;
/** Past the bound by far, and far short of the TCP stack's minutes. */
const ANSWER_WITHIN_MS = STALL_MS + 7000;

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  closeAllSockets();
  for (const step of cleanup.splice(0).reverse()) await step();
});

/** `work`'s outcome, or 'no answer' when it has none within `ms` (a hung call). */
function within<T>(work: Promise<T>, ms: number): Promise<T | 'no answer'> {
  return Promise.race([work, sleep(ms).then(() => 'no answer' as const)]);
}

async function metric(url: string, name: string): Promise<number> {
  const body = await (await fetch(`${url}/metrics`)).text();
  const line = body.split('\n').find((candidate) => candidate.startsWith(`${name} `));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

const unavailableBody = { statusCode: 503, error: 'Service Unavailable', message: ERRORS.UNAVAILABLE.message, code: 'UNAVAILABLE' };

describe('a gateway pod whose Postgres vanishes without a reset', () => {
  it('answers UNAVAILABLE within DATABASE_STALL_TIMEOUT_MS, and serves again once Postgres is reachable, without a restart', { timeout: 90_000 }, async () => {
    const relay = await startTcpRelay(inject('databaseUrl'));
    cleanup.push(() => relay.close());
    const logs: { level: number; msg: string }[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line) as { level: number; msg: string }) });
    const cluster = await startCluster(
      1,
      { DATABASE_URL: relay.url, DATABASE_STATEMENT_TIMEOUT_MS: '1000', DATABASE_STALL_TIMEOUT_MS: String(STALL_MS) },
      { logger: () => logger },
    );
    // Relay closed first (cleanup runs in reverse): without the fix the hung calls would hold the pod's close.
    cleanup.push(() => cluster.close());
    const url = cluster.pods[0]!.url;

    const alice = await makeUser('김철수');
    const bob = await makeUser('이영희');
    const room = await createRoom(url, alice);
    const bobsRoom = await createRoom(url, bob);
    const history = (): Promise<HttpResult> => request(url, 'GET', `/api/rooms/${room.roomId}/messages`, { token: alice.token });
    expect((await history()).status).toBe(200);
    const socket = await connect(url, alice.token);
    expect(await emitAck(socket, 'join-room', { roomId: room.roomId })).toMatchObject({ ok: true });

    // Postgres vanishes. A REST read is answered 503 UNAVAILABLE (the catalog's body) within the
    // bound; before, it hung for minutes.
    relay.freeze();
    const stalled = await within(history(), ANSWER_WITHIN_MS);
    expect(stalled === 'no answer' ? stalled : stalled.body).toEqual(unavailableBody);
    // A socket event that needs Postgres (a join: the membership is written) is answered UNAVAILABLE too.
    const join = await within(emitAck(socket, 'join-room', { roomId: bobsRoom.roomId }, ANSWER_WITHIN_MS), ANSWER_WITHIN_MS);
    expect(join).toMatchObject({ ok: false, error: { code: 'UNAVAILABLE', message: ERRORS.UNAVAILABLE.message } });
    // Not ready meanwhile.
    const readiness = await within(request(url, 'GET', '/readyz'), ANSWER_WITHIN_MS);
    expect(readiness === 'no answer' ? readiness : readiness.status).toBe(503);

    // Reachable again, through new connections only: the frozen ones stay dead. Ready again,
    // then the pod serves REST and joins, with no restart.
    relay.thaw();
    await expect.poll(async () => (await request(url, 'GET', '/readyz')).status, { timeout: 20_000, interval: 250 }).toBe(200);
    expect((await history()).status).toBe(200);
    expect(await emitAck(socket, 'join-room', { roomId: bobsRoom.roomId })).toMatchObject({ ok: true });

    expect(await metric(url, 'chat_postgres_replaced_total')).toBeGreaterThanOrEqual(1);
    // One episode, one error line, however many replacements it took; its end is told too (a
    // bound after the first success: a call stuck since the freeze may still stall).
    await expect.poll(() => logs.some((line) => line.msg === 'Postgres answering again after a stall'), { timeout: STALL_MS + 5000, interval: 100 }).toBe(true);
    expect(logs.filter((line) => line.msg.startsWith('Postgres call stalled:'))).toHaveLength(1);
    expect(JSON.stringify(logs)).not.toContain(relay.url);
  });
});
