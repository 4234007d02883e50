import { Redis } from 'ioredis';
import { describe, expect } from 'vitest';
import { createPresenceStore } from '@chat/presence';
import {
  connect,
  createRoom,
  emitAck,
  joinedOffline,
  makeUser,
  nextEvent,
  record,
  recordFor,
  request,
  sleep,
  spawnGateway,
  startPrivateRedis,
  type GatewayProcess,
  type TestSocket,
  type TestUser,
} from '@chat/testing';
import { clusterTest, startCluster, type TestCluster } from '../support/index.ts';

/**
 * Issue 3, presence: `presence` on a member's first connect and last disconnect, on any pod,
 * never for an extra tab; GET /api/rooms/:roomId/members with live flags; and a gateway
 * PROCESS killed with SIGKILL whose users the worker's presence GC takes offline.
 */

const it = clusterTest({ pods: 2, ownDatabase: true });
let cluster: TestCluster;
/** The process to be SIGKILLed boots (tsx compiles for seconds) while the first tests run. */
let doomedGateway: Promise<GatewayProcess>;

it.beforeAll(({ cluster: started }) => {
  cluster = started;
  doomedGateway = spawnGateway(cluster, { POD_NAME: 'doomed-gateway' });
  doomedGateway.catch(() => undefined);
});

type Members = { members: { userId: string; nicknameMask: string; joinedAt: string; online: boolean }[]; memberCount: number };

/** The member list as `viewer` (a member: the list is for the room's members only) sees it. */
async function members(url: string, roomId: string, viewer: TestUser): Promise<Members> {
  const result = await request<Members>(url, 'GET', `/api/rooms/${roomId}/members`, { token: viewer.token });
  expect(result.status).toBe(200);
  return result.body;
}

const onlineOf = (body: Members) => Object.fromEntries(body.members.map((m) => [m.userId, m.online]));

/** What the worker's GC does to pods it believes dead: removes every pod of the prefix with its counts; returns the users now offline. */
async function forgetEveryPod(redisUrl: string, prefix: string): Promise<string[]> {
  const redis = new Redis(redisUrl);
  try {
    const store = createPresenceStore(redis, prefix);
    await store.collectDeadPods(-60_000);
    const collected = await store.collectedDeadPods(1000);
    for (const pod of collected) await store.settleDeadPod(pod);
    return collected.flatMap((pod) => pod.offlineUserIds);
  } finally {
    redis.disconnect();
  }
}

type PresenceEvent = { userId: string; online: boolean };
const cameOnline = (events: PresenceEvent[], user: TestUser) => events.filter((event) => event.userId === user.userId && event.online);

/** A room watched from `watcherUrl`, and `member`, online on `memberUrl`, heard coming online. */
async function watchedRoomWithOnlineMember(watcherUrl: string, memberUrl: string, member: TestUser) {
  const watcherUser = await makeUser('관찰자');
  const { roomId } = await createRoom(watcherUrl, watcherUser);
  const watcher = await connect(watcherUrl, watcherUser.token);
  expect(await emitAck(watcher, 'join-room', { roomId })).toMatchObject({ ok: true });
  await joinedOffline(memberUrl, member, roomId);
  const heard = record(watcher, 'presence');
  await connect(memberUrl, member.token);
  await expect.poll(() => cameOnline(heard, member), { timeout: 3000 }).toHaveLength(1);
  return { roomId, watcher };
}

describe('presence across pods', () => {
  it('first socket online, last socket offline; extra tabs on any pod say nothing', { timeout: 30_000 }, async () => {
    const [a, b] = cluster.pods;
    const alice = await makeUser('김철수');
    const bob = await makeUser('이영희');
    const room = await createRoom(a!.url, alice);
    const roomId = room.roomId;
    const watcher = await connect(a!.url, alice.token);
    expect(await emitAck(watcher, 'join-room', { roomId })).toMatchObject({ ok: true });
    await joinedOffline(b!.url, bob, roomId);
    // Bob's socket above closed: the watcher heard him go offline.
    expect(await nextEvent(watcher, 'presence', 3000)).toEqual({ roomId, userId: bob.userId, nicknameMask: '이**', online: false });
    expect(onlineOf(await members(b!.url, roomId, alice))).toEqual({ [alice.userId]: true, [bob.userId]: false });

    // First socket (pod B) → online, to the room, seen on pod A.
    const online = nextEvent(watcher, 'presence', 3000);
    const tab1 = await connect(b!.url, bob.token);
    expect(await online).toEqual({ roomId, userId: bob.userId, nicknameMask: '이**', online: true });

    // A second tab on the other pod, then closing the first: nothing at all.
    const quiet1 = recordFor(watcher, ['presence'], 1200);
    const tab2 = await connect(a!.url, bob.token);
    await sleep(300);
    tab1.close();
    expect(await quiet1).toEqual([]);
    expect(onlineOf(await members(a!.url, roomId, alice))[bob.userId]).toBe(true);

    // Two tabs on the same pod, one closed: nothing either.
    const quiet2 = recordFor(watcher, ['presence'], 1000);
    const tab3 = await connect(a!.url, bob.token);
    await sleep(200);
    tab3.close();
    expect(await quiet2).toEqual([]);

    // The last tab closes → offline, once.
    const seen = recordFor(watcher, ['presence'], 1500);
    tab2.close();
    expect(await seen).toEqual([{ event: 'presence', payload: { roomId, userId: bob.userId, nicknameMask: '이**', online: false } }]);
    expect(onlineOf(await members(b!.url, roomId, alice))).toEqual({ [alice.userId]: true, [bob.userId]: false });
  });

  it('GET /api/rooms/:roomId/members: every member, joining order, masks, live flags from both pods', { timeout: 20_000 }, async () => {
    const [a, b] = cluster.pods;
    const users = await Promise.all(['김철수', '이영희', '박', '최지훈'].map((name) => makeUser(name)));
    const [u0, u1, u2, u3] = users as [TestUser, TestUser, TestUser, TestUser];
    const room = await createRoom(a!.url, u0);
    const roomId = room.roomId;
    const s0 = await connect(a!.url, u0.token);
    expect(await emitAck(s0, 'join-room', { roomId })).toMatchObject({ ok: true });
    const s1 = await connect(b!.url, u1.token);
    expect(await emitAck(s1, 'join-room', { roomId })).toMatchObject({ ok: true });
    await joinedOffline(a!.url, u2, roomId);
    const s3 = await connect(b!.url, u3.token);
    expect(await emitAck(s3, 'join-room', { roomId })).toMatchObject({ ok: true });
    // u3 leaves the room: no longer a member, whatever its socket does.
    expect(await emitAck(s3, 'leave-room', { roomId })).toMatchObject({ ok: true });
    await sleep(200);

    for (const pod of [a!, b!]) {
      const body = await members(pod.url, roomId, u0);
      expect(body.memberCount).toBe(3);
      expect(body.members.map((m) => [m.userId, m.nicknameMask, m.online])).toEqual([
        [u0.userId, '김**', true],
        [u1.userId, '이**', true],
        [u2.userId, '*', false],
      ]);
      for (const member of body.members) expect(member.joinedAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      const view = await request(pod.url, 'GET', `/api/rooms/${roomId}`);
      expect(view.body.memberCount).toBe(3);
    }
    s1.close();
    await sleep(300);
    expect(onlineOf(await members(a!.url, roomId, u0))).toEqual({ [u0.userId]: true, [u1.userId]: false, [u2.userId]: false });

    expect(await request(a!.url, 'GET', '/api/rooms/00000000-0000-4000-8000-000000000000/members', { token: u0.token })).toMatchObject({
      status: 404,
      body: { message: '방을 찾을 수 없습니다' },
    });
    expect((await request(a!.url, 'GET', '/api/rooms/not-a-uuid/members', { token: u0.token })).status).toBe(404);
  });
});

describe('a pod that Redis forgot', () => {
  it('re-announces its users online at its next heartbeat (after a Redis restart or a false GC)', { timeout: 30_000 }, async () => {
    const [a, b] = cluster.pods;
    const carol = await makeUser('최지훈');
    const alice = await makeUser('김철수');
    const bob = await makeUser('이영희');
    const masks = new Map([[carol, '최**'], [alice, '김**'], [bob, '이**']]);
    const { roomId } = await createRoom(a!.url, carol);
    const presence = (user: TestUser, online: boolean) => ({ roomId, userId: user.userId, nicknameMask: masks.get(user), online });
    const watcher = await connect(a!.url, carol.token);
    expect(await emitAck(watcher, 'join-room', { roomId })).toMatchObject({ ok: true });

    // Alice (pod A) and Bob (pod B) are members before their sockets connect, so that each
    // connect's `online` surely goes to the room and is heard before the GC: none can arrive
    // late and pass for a re-announcement. (A connect announces to the rooms its socket is in
    // when Redis answers: for a socket that joins right after connecting, that is a race.)
    const wentOffline = record(watcher, 'presence');
    await joinedOffline(a!.url, alice, roomId);
    await joinedOffline(b!.url, bob, roomId);
    // A pod announces a user's transitions in order: whatever came before the `offline` is in.
    await expect.poll(() => wentOffline, { timeout: 3000 }).toEqual(expect.arrayContaining([presence(alice, false), presence(bob, false)]));
    const heardOnline = record(watcher, 'presence');
    await connect(a!.url, alice.token);
    await connect(b!.url, bob.token);
    await expect.poll(() => heardOnline, { timeout: 3000 }).toEqual(expect.arrayContaining([presence(alice, true), presence(bob, true)]));

    // Listening from before the GC: a pod may beat right after it.
    const reannounced = record(watcher, 'presence');
    expect(await forgetEveryPod(cluster.redisUrl, cluster.redisPrefix)).toEqual(expect.arrayContaining([carol.userId, alice.userId, bob.userId]));
    // Each pod re-announces its own users at its own next heartbeat, within 5 s. The pods do
    // not beat in step: pod B may beat just after the GC and pod A 5 s later, so hearing Bob
    // says nothing of Alice. Every user, once.
    const everyone = [presence(carol, true), presence(alice, true), presence(bob, true)];
    await expect.poll(() => reannounced, { timeout: 10_000 }).toEqual(expect.arrayContaining(everyone));
    expect(reannounced).toHaveLength(everyone.length);
    // A pod announces only once its heartbeat has restored its counts in Redis: read after
    // hearing everyone, the members are all online, with no time to settle.
    expect(onlineOf(await members(a!.url, roomId, carol))).toEqual({ [carol.userId]: true, [alice.userId]: true, [bob.userId]: true });
  });
});

describe('a pod that Redis forgot, and a socket connecting before its next heartbeat', () => {
  it('still re-announces the pod\'s other users (the connect put the pod back, so its heartbeat alone no longer would)', { timeout: 30_000 }, async () => {
    const [a, b] = cluster.pods;
    const bob = await makeUser('이영희');
    const { roomId, watcher } = await watchedRoomWithOnlineMember(a!.url, b!.url, bob);
    const reannounced = record(watcher, 'presence');
    expect(await forgetEveryPod(cluster.redisUrl, cluster.redisPrefix)).toContain(bob.userId);
    // At once, well before pod B's next heartbeat (5 s apart): this connect puts pod B back.
    await connect(b!.url, (await makeUser('박민수')).token);
    await expect.poll(() => cameOnline(reannounced, bob), { timeout: 10_000 }).toHaveLength(1);
    expect((await members(a!.url, roomId, bob)).members.find((member) => member.userId === bob.userId)?.online).toBe(true);
  });
});

/**
 * A one-pod cluster on a Redis of its own (CLIENT PAUSE holds every client's writes, other test
 * files' too), with Bob online in a watched room; `run` gets what the watcher hears from then on.
 */
async function onPausableRedis(run: (context: { bob: TestUser; heard: PresenceEvent[]; admin: Redis; redisUrl: string; prefix: string }) => Promise<void>) {
  const redis = await startPrivateRedis();
  const local = await startCluster(1, { REDIS_URL: redis.url, DATABASE_URL: cluster.databaseUrl });
  const admin = new Redis(redis.url);
  try {
    const url = local.pods[0]!.url;
    const bob = await makeUser('이영희');
    const { watcher } = await watchedRoomWithOnlineMember(url, url, bob);
    const heard = record(watcher, 'presence') as PresenceEvent[];
    await run({ bob, heard, admin, redisUrl: redis.url, prefix: local.redisPrefix });
  } finally {
    admin.disconnect();
    await local.close();
    await redis.stop();
  }
}

describe('a heartbeat whose reply is lost', () => {
  it('re-announces at the next heartbeat all the same (the lost one may have put the forgotten pod back unheard)', { timeout: 45_000 }, async () => {
    await onPausableRedis(async ({ bob, heard, admin, redisUrl, prefix }) => {
      expect(await forgetEveryPod(redisUrl, prefix)).toContain(bob.userId);
      // For 6 s Redis holds writes and scripts: the pod's next heartbeat times out on its side
      // (500 ms), then runs when the pause ends and puts the pod back without the pod hearing it.
      await admin.call('CLIENT', 'PAUSE', '6000', 'WRITE');
      await sleep(6500);
      await expect.poll(() => cameOnline(heard, bob), { timeout: 8000 }).toHaveLength(1);
    });
  });
});

describe('a heartbeat that fails while nothing was forgotten', () => {
  it('announces nothing: only a forget (GC or lost Redis data) makes the pod re-announce its users', { timeout: 45_000 }, async () => {
    await onPausableRedis(async ({ heard, admin }) => {
      // The next heartbeat times out on the pod's side and runs when the pause ends; then one
      // more (every 5 s) is answered. Re-announcing after every failed heartbeat would put
      // every user of the pod in front of every room's members again, under Redis trouble.
      await admin.call('CLIENT', 'PAUSE', '6000', 'WRITE');
      await sleep(6500 + 6000);
      expect(heard).toEqual([]);
    });
  });
});

describe('a gateway process killed with SIGKILL', () => {
  it('its users go offline, with presence events, through the worker’s GC', { timeout: 60_000 }, async ({ startWorker }) => {
    const [a] = cluster.pods;
    await startWorker({ PRESENCE_GC_INTERVAL_MS: '500' });
    const gateway = await doomedGateway;
    const alice = await makeUser('김철수');
    const dave = await makeUser('정다운');
    const erin = await makeUser('한별');
    const room = await createRoom(a!.url, alice);
    const roomId = room.roomId;
    const watcher = await connect(a!.url, alice.token);
    expect(await emitAck(watcher, 'join-room', { roomId })).toMatchObject({ ok: true });

    // Dave is only on the doomed process; Erin has a tab there and one on pod A.
    const doomed: TestSocket[] = [];
    for (const user of [dave, erin]) {
      const socket = await connect(gateway.url, user.token);
      expect(await emitAck(socket, 'join-room', { roomId })).toMatchObject({ ok: true });
      doomed.push(socket);
    }
    const erinElsewhere = await connect(a!.url, erin.token);
    await sleep(300);
    expect(onlineOf(await members(a!.url, roomId, alice))).toEqual({ [alice.userId]: true, [dave.userId]: true, [erin.userId]: true });

    const events: { payload: unknown; at: number }[] = [];
    watcher.on('presence', (payload) => events.push({ payload, at: Date.now() }));
    const killedAt = Date.now();
    await gateway.kill('SIGKILL');
    expect(gateway.child.signalCode).toBe('SIGKILL');

    const deadline = killedAt + 30_000;
    while (Date.now() < deadline && !events.some((e) => (e.payload as { userId: string }).userId === dave.userId)) {
      await sleep(100);
    }
    const offline = events.find((e) => (e.payload as { userId: string }).userId === dave.userId);
    expect(offline, 'dave went offline within 30 s').toBeDefined();
    console.log(`presence lag after a gateway SIGKILL (kill → presence offline on another pod): ${offline!.at - killedAt} ms`);
    expect(offline!.payload).toEqual({ roomId, userId: dave.userId, nicknameMask: '정**', online: false });
    await sleep(1000);
    // Erin still has a tab on pod A: she stays online, and nobody said otherwise.
    expect(events.map((e) => e.payload)).toEqual([offline!.payload]);
    expect(onlineOf(await members(a!.url, roomId, alice))).toEqual({ [alice.userId]: true, [dave.userId]: false, [erin.userId]: true });

    // When Dave comes back (to any pod) he is announced online again.
    const back = nextEvent(watcher, 'presence', 3000);
    await connect(a!.url, dave.token);
    expect(await back).toEqual({ roomId, userId: dave.userId, nicknameMask: '정**', online: true });
    erinElsewhere.close();
  });
});
