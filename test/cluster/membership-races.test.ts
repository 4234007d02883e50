import { createHash, randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { roomChannel, userChannel } from '@chat/protocol';
import {
  closeAllSockets,
  connect,
  createRoom,
  emitAck,
  makeUser,
  record,
  request,
  sleep,
  startTcpRelay,
  uniquePrefix,
  type HeldReplies,
  type TcpRelay,
  type TestSocket,
  type TestUser,
} from '@chat/testing';
import { startCluster, type TestCluster } from '../support/index.ts';

/**
 * Sockets mirror database membership (docs/ARCHITECTURE.md, PROTOCOL §14): every socket of a
 * user is in `room:<id>` on its pod exactly when room_members says the user is a member. One
 * user, three devices over two pods, one room; each round fires `join-room` and `leave-room`
 * from two devices at once (no waiting between them; the order, the pods and a small offset
 * varied), or a device's reconnection against a leave, then waits (bounded) until every socket
 * is where the database says and checks it stays there. The moves travel the bus and each is
 * followed by a `membership-check` (realtime/membership-reconciler.ts); neither may leave a
 * socket hearing a room its user left, or deaf to one it joined. Runs on the run's bus
 * (TEST_BUS).
 *
 * What it found: a repeat join (a socket already in the room) racing a leave from a device on
 * the same pod put its socket back into the room after the leave had taken it out (rounds with
 * "join ×3 d3@A, leave d1@A, leave first"), and a handshake that read the user's rooms before a
 * leave (or a join) kept its socket in the room (or out of it), out of reach of the move and of
 * the check (the reconnection rounds).
 */

/** How long the mirror may take to agree with the database after a round (a bus hop or two). */
const CONVERGE_MS = 3000;
/** And how long it must then keep agreeing. */
const STABLE_MS = 200;
/**
 * Pod B's SSUBSCRIBEs reach Redis this late (as over a slow link to a bus shard): a socket
 * entering a room B does not hear yet waits that long for the bus (subscription-barrier.ts).
 */
const SUBSCRIBE_DELAY_MS = 300;

/** The server API's key (PROTOCOL §17): it takes the user out of the room in one round. */
const SERVER_KEY = `sk_${randomBytes(24).toString('hex')}`;

let podA: TestCluster;
let podB: TestCluster;
/** Pod A's way to Postgres: its replies can be held back (a query run, its answer not yet home). */
let podADatabase: TcpRelay;
let sql: postgres.Sql;

beforeAll(async () => {
  const prefix = uniquePrefix('races');
  // Budgets out of the way: the rounds make many moves and handshakes for one user.
  const env = {
    REDIS_PREFIX: prefix,
    MEMBERSHIP_RATE_LIMIT_PER_MINUTE: '100000',
    HANDSHAKE_RATE_LIMIT_PER_MINUTE: '100000',
    SERVER_API_KEYS: `backend:${createHash('sha256').update(SERVER_KEY).digest('hex')}`,
  };
  podADatabase = await startTcpRelay(inject('databaseUrl'));
  podA = await startCluster(1, { ...env, DATABASE_URL: podADatabase.url, POD_NAME: 'races-pod-a' });
  podB = await startCluster(1, {
    ...env,
    DATABASE_URL: inject('databaseUrl'),
    POD_NAME: 'races-pod-b',
    FAULT_BUS_SUBSCRIBE_DELAY_MS: String(SUBSCRIBE_DELAY_MS),
  });
  sql = postgres(inject('databaseUrl'), { max: 1, onnotice: () => {} });
});
afterAll(async () => {
  closeAllSockets();
  await podA?.close();
  await podB?.close();
  await podADatabase?.close();
  await sql?.end();
});

interface Device {
  name: string;
  pod: TestCluster;
  socket: TestSocket;
  heard: { content: string | null }[];
}

const podName = (pod: TestCluster) => (pod === podA ? 'A' : 'B');

async function device(name: string, pod: TestCluster, user: TestUser): Promise<Device> {
  const socket = await connect(pod.pods[0]!.url, user.token);
  return { name, pod, socket, heard: record(socket, 'new-message') };
}

async function isMember(roomId: string, user: TestUser): Promise<boolean> {
  const [row] = await sql<{ member: boolean }[]>`
    select exists(select 1 from room_members where room_id = ${roomId} and user_id = ${user.userId}) as member`;
  return row!.member;
}

/** Where each device's socket is on its pod, and what the database says; null when they agree. */
async function divergence(devices: Device[], roomId: string, user: TestUser): Promise<string | null> {
  const member = await isMember(roomId, user);
  const wrong = devices.filter((d) => {
    const nsp = d.pod.pods[0]!.gateway.nsp;
    const inRoom = nsp.adapter.rooms.get(roomChannel(roomId))?.has(d.socket.id!) ?? false;
    return !nsp.sockets.has(d.socket.id!) || inRoom !== member;
  });
  return wrong.length === 0 ? null : `database: ${member ? 'member' : 'not a member'}; wrong: ${wrong.map((d) => `${d.name}@${podName(d.pod)}`).join(', ')}`;
}

/** Waits until the mirror agrees with the database and keeps agreeing; the disagreement otherwise. */
async function settled(devices: Device[], roomId: string, user: TestUser): Promise<string | null> {
  const deadline = Date.now() + CONVERGE_MS;
  let last = await divergence(devices, roomId, user);
  while (last !== null && Date.now() < deadline) {
    await sleep(25);
    last = await divergence(devices, roomId, user);
  }
  if (last !== null) return `did not converge in ${CONVERGE_MS} ms: ${last}`;
  const stableUntil = Date.now() + STABLE_MS;
  while (Date.now() < stableUntil) {
    await sleep(25);
    const now = await divergence(devices, roomId, user);
    if (now !== null) return `converged, then diverged: ${now}`;
  }
  return null;
}

type Ack = { ok: boolean; error?: { code: string } };
const acceptable = (ack: Ack, refusals: string[]) => ack.ok || refusals.includes(ack.error?.code ?? '');

describe('join-room, leave-room and handshakes of one user racing on two pods', () => {
  it('leaves every socket of the user where the database puts the user', { timeout: 40_000 }, async () => {
    const A = podA.pods[0]!.url;
    const owner = await makeUser('방장');
    const user = await makeUser('이영희');
    const { roomId } = await createRoom(A, owner);
    const ownerSocket = await connect(A, owner.token);
    expect((await emitAck(ownerSocket, 'join-room', { roomId })).ok).toBe(true);
    const devices = [await device('d1', podA, user), await device('d2', podB, user), await device('d3', podA, user)];
    const failures: string[] = [];
    let rounds = 0;

    const prepare = async (member: boolean, by: Device) => {
      if ((await isMember(roomId, user)) !== member) {
        const ack = (await emitAck(by.socket, member ? 'join-room' : 'leave-room', { roomId })) as Ack;
        if (!ack.ok) throw new Error(`preparing the round: ${JSON.stringify(ack)}`);
      }
      const off = await settled(devices, roomId, user);
      if (off !== null) failures.push(`before round ${rounds + 1} (sequential ${member ? 'join' : 'leave'}): ${off}`);
    };

    // Join and leave from two devices at once: every pairing of devices (the same pod, or two),
    // from both starting states, either emitted first, the other at once or a ms or two after.
    // The joiner sends three joins back to back (its socket handles them one after the other),
    // so that for most of the round one of them is on its way through its pod as the leave lands.
    const pairs: [number, number][] = [[0, 1], [1, 0], [0, 2], [2, 0], [1, 2], [2, 1]];
    for (let round = 0; round < 2 * pairs.length; round++) {
      const [j, l] = pairs[round % pairs.length]!;
      const joiner = devices[j]!;
      const leaver = devices[l]!;
      const startMember = (round + Math.floor(round / pairs.length)) % 2 === 0;
      const leaveFirst = Math.floor(round / 2) % 2 === 0;
      const offsetMs = [0, 1, 2][round % 3]!;
      await prepare(startMember, devices[round % devices.length]!);
      rounds += 1;
      const label = `round ${rounds} (${startMember ? 'member' : 'not a member'}; join ×3 ${joiner.name}@${podName(joiner.pod)}, leave ${leaver.name}@${podName(leaver.pod)}, ${leaveFirst ? 'leave' : 'join'} first, the other +${offsetMs} ms)`;
      const join = async () => {
        const answers = await Promise.all([1, 2, 3].map(() => emitAck(joiner.socket, 'join-room', { roomId }) as Promise<Ack>));
        return answers.find((answer) => !answer.ok) ?? answers[0]!;
      };
      const leave = () => emitAck(leaver.socket, 'leave-room', { roomId }) as Promise<Ack>;
      // The second is emitted without waiting for the first's answer.
      const later = (emit: () => Promise<Ack>) => (offsetMs === 0 ? emit() : sleep(offsetMs).then(emit));
      let joinAck: Promise<Ack>;
      let leaveAck: Promise<Ack>;
      if (leaveFirst) {
        leaveAck = leave();
        joinAck = later(join);
      } else {
        joinAck = join();
        leaveAck = later(leave);
      }
      const acks = [await joinAck, await leaveAck] as const;
      if (!acceptable(acks[0], []) || !acceptable(acks[1], ['NOT_A_MEMBER_LEAVE'])) {
        failures.push(`${label}: unexpected answers ${JSON.stringify(acks)}`);
      }
      const off = await settled(devices, roomId, user);
      if (off !== null) failures.push(`${label}: ${off}`);
    }

    // A device reconnecting (its handshake reads the user's rooms, puts the socket into them and
    // waits for its pod to hear them) against a move: a leave from d1 on A while the user's only
    // device on pod B reconnects there, or while d3 reconnects on A; the server API taking the
    // user out on B (a move B makes itself) while B's device reconnects; a join from d1 on A, the
    // user not a member before. The move goes either a few ms after the reconnection starts, or
    // at the moment the handshake has read the rooms (its pod's adapter shows the new socket in
    // its user's channel, not yet connected).
    const handshakeRounds: [index: number, when: number | 'read', by: 'leave' | 'server' | 'join'][] = [
      [1, 'read', 'leave'],
      [1, 2, 'leave'],
      [1, 'read', 'server'],
      [1, 'read', 'join'],
      [2, 'read', 'leave'],
    ];
    for (const [index, when, by] of handshakeRounds) {
      await prepare(by !== 'join', devices[0]!);
      rounds += 1;
      const old = devices[index]!;
      const { nsp } = old.pod.pods[0]!.gateway;
      const label = `round ${rounds} (${old.name} reconnecting on ${podName(old.pod)} against ${by === 'server' ? `the server API's removal on ${podName(old.pod)}` : `a ${by} by d1@A`} ${when === 'read' ? 'once its rooms are read' : `+${when} ms`})`;
      old.socket.close();
      await expect.poll(() => nsp.sockets.has(old.socket.id ?? ''), { timeout: 2000 }).toBe(false);
      const move = async (): Promise<Ack> => {
        if (by !== 'server') return (await emitAck(devices[0]!.socket, `${by}-room`, { roomId })) as Ack;
        const result = await request(old.pod.pods[0]!.url, 'DELETE', `/api/server/rooms/${roomId}/members/${user.userId}`, { headers: { 'x-api-key': SERVER_KEY } });
        return result.status === 200 ? { ok: true } : { ok: false, error: { code: `HTTP ${result.status}` } };
      };
      let moving: Promise<Ack> | undefined;
      if (when === 'read') {
        moving = new Promise((resolve) => {
          const onJoin = (room: string, socketId: string) => {
            // A handshake's socket: in its user's channel, not yet connected.
            if (room !== userChannel(user.userId) || nsp.sockets.has(socketId)) return;
            nsp.adapter.off('join-room', onJoin);
            resolve(move());
          };
          nsp.adapter.on('join-room', onJoin);
        });
      }
      const arriving = device(old.name, old.pod, user);
      if (when !== 'read') moving = sleep(when).then(move);
      const moveAck = await moving!;
      devices[index] = await arriving;
      if (!moveAck.ok) failures.push(`${label}: unexpected answer ${JSON.stringify(moveAck)}`);
      const off = await settled(devices, roomId, user);
      if (off !== null) failures.push(`${label}: ${off}`);
    }

    // After a last race, the owner's message reaches exactly the member devices.
    await prepare(false, devices[1]!);
    rounds += 1;
    const [joined, left] = await Promise.all([
      emitAck(devices[2]!.socket, 'join-room', { roomId }) as Promise<Ack>,
      emitAck(devices[1]!.socket, 'leave-room', { roomId }) as Promise<Ack>,
    ]);
    if (!acceptable(joined, []) || !acceptable(left, ['NOT_A_MEMBER_LEAVE'])) failures.push(`round ${rounds} (join d3@A, leave d2@B): unexpected answers ${JSON.stringify([joined, left])}`);
    const off = await settled(devices, roomId, user);
    if (off !== null) failures.push(`round ${rounds} (join d3@A, leave d2@B): ${off}`);
    const member = await isMember(roomId, user);
    // A socket put into the room on pod B by a move from A is heard there once B's subscription
    // is confirmed (it is told `resync` then): give that its time before the probe.
    await sleep(2 * SUBSCRIBE_DELAY_MS);
    for (const d of devices) d.heard.length = 0;
    const content = `round ${rounds} probe`;
    expect((await emitAck(ownerSocket, 'send-message', { roomId, type: 'text', content })).ok).toBe(true);
    // Members hear it within a bus hop; the others must not hear it at all.
    const heard = () => devices.map((d) => d.heard.some((message) => message.content === content));
    const deadline = Date.now() + 2000;
    while (member && heard().includes(false) && Date.now() < deadline) await sleep(20);
    if (!member) await sleep(300);
    if (heard().some((got) => got !== member)) {
      failures.push(`round ${rounds} (the owner's message, the user ${member ? 'a member' : 'not a member'}): heard by ${JSON.stringify(heard())}`);
    }

    expect(failures).toEqual([]);
    expect(rounds).toBe(18);
  });
});

/** The room-joined / room-left events a socket heard, in order. */
function membershipEvents(socket: TestSocket, roomId: string): string[] {
  const heard: string[] = [];
  for (const event of ['room-joined', 'room-left'] as const) {
    socket.on(event, (payload: { roomId: string }) => {
      if (payload.roomId === roomId) heard.push(event);
    });
  }
  return heard;
}

/** A new user, member of a new room, with a device on each pod (d1 on A joined it), all in the room. */
async function memberOnTwoPods(name: string) {
  const owner = await makeUser('방장');
  const user = await makeUser(name);
  const { roomId } = await createRoom(podA.pods[0]!.url, owner);
  const d1 = await device('d1', podA, user);
  const d2 = await device('d2', podB, user);
  expect((await emitAck(d1.socket, 'join-room', { roomId })).ok).toBe(true);
  expect(await settled([d1, d2], roomId, user)).toBeNull();
  return { roomId, user, d1, d2 };
}

/**
 * Sends `first` from a device on pod A, whose Postgres replies `hold` holds back; once one is
 * held (the query has run on the server, its answer not yet home), runs `meanwhile`, then lets
 * the replies through. Resolves with `first`'s answer.
 */
async function whileHeld(hold: HeldReplies, neverHeld: string, first: () => Promise<Ack>, meanwhile: () => Promise<void>): Promise<Ack> {
  let answer: Promise<Ack>;
  try {
    answer = first();
    const failed = sleep(5000).then(() => Promise.reject(new Error(neverHeld)));
    await Promise.race([hold.held(), failed]);
    await meanwhile();
  } finally {
    hold.release();
  }
  return answer;
}

/** `joiner`'s join-room on pod A held (whileHeld) while `leaver` leaves; `leaveHeard` says when to let it go on. */
function joinAcrossLeave(hold: HeldReplies, joiner: Device, leaver: Device, roomId: string, neverHeld: string, leaveHeard: () => Promise<void>): Promise<Ack> {
  return whileHeld(hold, neverHeld, () => emitAck(joiner.socket, 'join-room', { roomId }) as Promise<Ack>, async () => {
    expect((await emitAck(leaver.socket, 'leave-room', { roomId })).ok).toBe(true);
    await leaveHeard();
  });
}

describe('a repeat join-room racing a leave-room of the same user', () => {
  // PROTOCOL §2: a repeat join answered while a leave on another device takes the sockets out
  // is answered all the same, "and the room-left follows". The user is then not a member, so
  // the last word the socket hears must be room-left.
  it('follows its answer with room-left when the leave\'s room-left reached the socket first', { timeout: 20_000 }, async () => {
    const { roomId, user, d1, d2 } = await memberOnTwoPods('최지우');
    const heard = membershipEvents(d1.socket, roomId);

    // d1's repeat join reads the room (its socket is in it) and its answer is held on the way
    // back from Postgres; meanwhile d2 leaves on pod B and the leave's room-left reaches d1.
    // (The read is the only query of pod A that names this room meanwhile.)
    const joinAck = await joinAcrossLeave(podADatabase.holdRepliesTo(roomId), d1, d2, roomId, 'the repeat join never read the room', async () => {
      await expect.poll(() => heard, { timeout: 5000 }).toEqual(['room-left']);
    });
    expect(joinAck.ok).toBe(true);

    expect(await settled([d1, d2], roomId, user)).toBeNull();
    expect(await isMember(roomId, user)).toBe(false);
    // Sent before the answer's ack, so heard by the time the ack is.
    expect(heard).toEqual(['room-left', 'room-joined', 'room-left']);
  });

  it('follows its answer with room-left when the read finds the user no longer a member', async () => {
    const A = podA.pods[0]!.url;
    const owner = await makeUser('방장');
    const user = await makeUser('한가람');
    const { roomId } = await createRoom(A, owner);
    const d1 = await device('d1', podA, user);
    expect((await emitAck(d1.socket, 'join-room', { roomId })).ok).toBe(true);
    const heard = membershipEvents(d1.socket, roomId);
    // A leave whose room-left reached this socket before its repeat join was sent (on a sharded
    // bus, the user's channel and the move's need not keep their order) and whose move has not
    // reached pod A yet: the membership is gone, the socket still in the room.
    await sql`with gone as (delete from room_members where room_id = ${roomId} and user_id = ${user.userId} returning room_id)
      update rooms set member_count = member_count - 1 where id in (select room_id from gone)`;
    expect((await emitAck(d1.socket, 'join-room', { roomId })).ok).toBe(true);
    expect(heard).toEqual(['room-joined', 'room-left']);
  });
});

describe('a first join-room racing a leave-room of the same user', () => {
  // The join on pod A writes the membership and the leave on pod B deletes it right after; the
  // database numbers the two changes in that order. Each pod answers the user's devices, the
  // leave's room-left going out as soon as it commits, the join's room-joined once its commit is
  // answered: every device must end hearing room-left, the database's last word.
  async function joinOvertakenByLeave(name: string) {
    const A = podA.pods[0]!.url;
    const owner = await makeUser('방장');
    const user = await makeUser(name);
    const { roomId } = await createRoom(A, owner);
    const d1 = await device('d1', podA, user);
    const d2 = await device('d2', podB, user);
    const heard1 = membershipEvents(d1.socket, roomId);
    const heard2 = membershipEvents(d2.socket, roomId);

    // d1's join commits on pod A (the statement after the one naming the room and the user is
    // its COMMIT) and the commit's answer is held on its way back from Postgres;
    // meanwhile d2 leaves on pod B, and the leave's room-left reaches both devices.
    const joinAck = await joinAcrossLeave(podADatabase.holdRepliesAfter(roomId, user.userId), d1, d2, roomId, 'the join never committed', async () => {
      await expect.poll(() => [heard1.join(), heard2.join()], { timeout: 5000 }).toEqual(['room-left', 'room-left']);
    });
    expect(joinAck.ok).toBe(true);
    expect(await isMember(roomId, user)).toBe(false);
    return { roomId, user, d1, d2, heard1, heard2 };
  }

  it('ends every device of the user with room-left when the join\'s answer comes after the leave\'s', { timeout: 20_000 }, async () => {
    const { heard1, heard2 } = await joinOvertakenByLeave('윤서진');
    // The caller: room-left again before its ack. The other device: after the join's room-joined.
    expect(heard1).toEqual(['room-left', 'room-joined', 'room-left']);
    await expect.poll(() => heard2, { timeout: 5000 }).toEqual(['room-left', 'room-joined', 'room-left']);
  });

  // The leave's move and its membership-check reached pod A before the join put its caller in;
  // pod A's own move came after, and A does not check its own moves: d1's socket stayed in the
  // room, hearing it, unless the check the leave sent is repeated once the join has moved.
  it('leaves the caller\'s socket out of the room', { timeout: 20_000 }, async () => {
    const { roomId, user, d1, d2 } = await joinOvertakenByLeave('윤서아');
    expect(await settled([d1, d2], roomId, user)).toBeNull();
  });
});

describe('a leave-room answered after a later first join-room of the same user', () => {
  // The leave on pod A commits and its answer is held on the way back from Postgres; meanwhile a
  // device of the user connecting on pod B (out of the room: the user is not a member) joins,
  // and the join commits after the leave. The leave's room-left then goes out last, older than
  // the join: every device must end hearing room-joined, every socket in the room.
  it('ends every device of the user with room-joined, every socket in the room', { timeout: 20_000 }, async () => {
    const { roomId, user, d1, d2 } = await memberOnTwoPods('배수아');
    const heard1 = membershipEvents(d1.socket, roomId);
    const heard2 = membershipEvents(d2.socket, roomId);

    let d3: Device | undefined;
    let heard3: string[] = [];
    const leaveAck = await whileHeld(podADatabase.holdRepliesTo(roomId, user.userId), 'the leave never ran', () => emitAck(d1.socket, 'leave-room', { roomId }) as Promise<Ack>, async () => {
      expect(await isMember(roomId, user)).toBe(false);
      d3 = await device('d3', podB, user);
      heard3 = membershipEvents(d3.socket, roomId);
      expect((await emitAck(d3.socket, 'join-room', { roomId })).ok).toBe(true);
      // The join's room-joined has reached every device (d1's through the bus, not Postgres).
      await expect.poll(() => [heard1.join(), heard2.join(), heard3.join()], { timeout: 5000 }).toEqual(['room-joined', 'room-joined', 'room-joined']);
    });
    expect(leaveAck.ok).toBe(true);

    expect(await isMember(roomId, user)).toBe(true);
    // The leave's room-left, older than the join, is followed by room-joined again.
    for (const heard of [heard1, heard2, heard3]) {
      await expect.poll(() => heard, { timeout: 5000 }).toEqual(['room-joined', 'room-left', 'room-joined']);
    }
    expect(await settled([d1, d2, d3!], roomId, user)).toBeNull();
  });
});
