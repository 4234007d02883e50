import calculateSlot from 'cluster-key-slot';
import { io } from 'socket.io-client';
import { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stateKeyPrefix } from '@chat/bus';
import { createPresenceStore } from '@chat/presence';
import { CHAT_NAMESPACE } from '@chat/protocol';
import {
  connect,
  createRoom,
  emitAck,
  joinedOffline,
  makeUser,
  nextEvent,
  record,
  request,
  sleep,
  spawnGateway,
  type GatewayProcess,
  type TestSocket,
  type TestUser,
} from '@chat/testing';
import { startRedisCluster, type LocalRedisCluster } from '@chat/testing/redis-cluster';
import { startAppsOn, type AppsOnServers, type TestCluster } from '../support/index.ts';

/**
 * The state on a Redis Cluster (REDIS_STATE_CLUSTER_NODES), the bus on the same cluster, its
 * nodes requiring a password (REDIS_URL's), and REDIS_URL's address where nothing listens:
 * two pods and the worker keep every cross-pod
 * guarantee that lives in the state — presence announced once across pods, one socket cap per
 * user, one send budget per user, the worker's BullMQ jobs — with the multi-key state under the
 * prefix's hash tag and the rate limits spread over the masters.
 */

const CAP = 3;
const PASSWORD = 'cluster-secret';
const SENDS_PER_MINUTE = 5;
const TOO_MANY = { message: '요청이 너무 많습니다. 잠시 후 다시 시도해주세요', code: 'TOO_MANY_REQUESTS' };

describe('state on a Redis Cluster', () => {
  let redisCluster: LocalRedisCluster;
  let cluster: TestCluster;
  let env: Record<string, string>;
  let apps: AppsOnServers;
  /** A gateway process to SIGKILL; it boots (tsx compiles for seconds) while the first tests run. */
  let doomedGateway: Promise<GatewayProcess>;

  beforeAll(async () => {
    redisCluster = await startRedisCluster({ password: PASSWORD });
    env = {
      // Nothing listens here: an app that kept its state on REDIS_URL would not start. Its
      // password is the cluster's (every node requires it).
      REDIS_URL: `redis://:${PASSWORD}@127.0.0.1:1`,
      REDIS_STATE_CLUSTER_NODES: redisCluster.nodesString,
      REDIS_BUS_CLUSTER_NODES: redisCluster.nodesString,
    };
    apps = await startAppsOn(
      { ...env, MAX_SOCKETS_PER_USER: String(CAP), MESSAGE_RATE_LIMIT_PER_MINUTE: String(SENDS_PER_MINUTE) },
      { worker: 'state-cluster-worker', workerEnv: { PRESENCE_GC_INTERVAL_MS: '500' } },
    );
    cluster = apps.cluster;
    doomedGateway = spawnGateway(cluster, { ...env, POD_NAME: 'state-cluster-doomed' });
    doomedGateway.catch(() => undefined);
  }, 90_000);

  afterAll(async () => {
    await (await doomedGateway?.catch(() => null))?.kill('SIGKILL');
    await apps?.stop();
    await redisCluster?.close();
  }, 40_000);

  function handshake(url: string, user: TestUser): Promise<{ socket: TestSocket } | { refused: { message: string; code?: string } }> {
    const socket: TestSocket = io(`${url}${CHAT_NAMESPACE}`, { transports: ['websocket'], auth: { token: user.token }, reconnection: false, forceNew: true });
    return new Promise((resolve) => {
      socket.once('connect', () => resolve({ socket }));
      socket.once('connect_error', (error: Error & { data?: { code?: string } }) => {
        socket.close();
        resolve({ refused: { message: error.message, code: error.data?.code } });
      });
    });
  }

  it('is ready on both pods with REDIS_URL unreachable', async () => {
    for (const pod of cluster.pods) expect((await request(pod.url, 'GET', '/readyz')).status).toBe(200);
  });

  it('announces a user online and offline across pods, and lists members online', { timeout: 30_000 }, async () => {
    const [a, b] = cluster.pods;
    const alice = await makeUser('김철수');
    const bob = await makeUser('이영희');
    const { roomId } = await createRoom(a!.url, alice);
    await joinedOffline(b!.url, bob, roomId);
    const watcher = await connect(a!.url, alice.token);
    expect(await emitAck(watcher, 'join-room', { roomId })).toMatchObject({ ok: true });

    const online = nextEvent(watcher, 'presence', 5000);
    const bobOnB = await connect(b!.url, bob.token);
    expect(await online).toEqual({ roomId, userId: bob.userId, nicknameMask: '이**', online: true });
    const listed = await request<{ members: { userId: string; online: boolean }[] }>(a!.url, 'GET', `/api/rooms/${roomId}/members`, { token: alice.token });
    expect(listed.body.members.find((member) => member.userId === bob.userId)?.online).toBe(true);

    const offline = nextEvent(watcher, 'presence', 5000);
    bobOnB.close();
    expect(await offline).toEqual({ roomId, userId: bob.userId, nicknameMask: '이**', online: false });
  });

  it('caps one user’s sockets across both pods, and gives a place back on disconnect', { timeout: 30_000 }, async () => {
    const [a, b] = cluster.pods;
    const user = await makeUser('박민수');
    const outcomes = await Promise.all(Array.from({ length: 8 }, (_, i) => handshake((i % 2 === 0 ? a : b)!.url, user)));
    const sockets = outcomes.flatMap((outcome) => ('socket' in outcome ? [outcome.socket] : []));
    expect(sockets).toHaveLength(CAP);
    expect(outcomes.flatMap((outcome) => ('refused' in outcome ? [outcome.refused] : []))).toEqual(Array.from({ length: 8 - CAP }, () => TOO_MANY));
    sockets[0]!.close();
    let again: TestSocket | null = null;
    for (let attempt = 0; attempt < 50 && !again; attempt++) {
      const outcome = await handshake(b!.url, user);
      if ('socket' in outcome) again = outcome.socket;
      else await sleep(100);
    }
    expect(again).not.toBeNull();
    for (const socket of [...sockets, again!]) socket.close();
  });

  it('holds one send budget per user across pods', { timeout: 30_000 }, async () => {
    const [a, b] = cluster.pods;
    const sender = await makeUser('최지우');
    const { roomId } = await createRoom(a!.url, sender);
    const onA = await connect(a!.url, sender.token);
    const onB = await connect(b!.url, sender.token);
    for (const socket of [onA, onB]) expect(await emitAck(socket, 'join-room', { roomId })).toMatchObject({ ok: true });
    const answers: { ok: boolean; error?: { code?: string; retryAfterMs?: number } }[] = [];
    for (let i = 0; i < SENDS_PER_MINUTE + 3; i++) {
      answers.push(await emitAck(i % 2 === 0 ? onA : onB, 'send-message', { roomId, type: 'text', content: `${i}` }));
    }
    expect(answers.filter((answer) => answer.ok)).toHaveLength(SENDS_PER_MINUTE);
    const refused = answers.filter((answer) => !answer.ok);
    expect(refused.map((answer) => answer.error?.code)).toEqual(['RATE_LIMITED', 'RATE_LIMITED', 'RATE_LIMITED']);
    for (const answer of refused) expect(answer.error?.retryAfterMs).toBeGreaterThan(0);
  });

  it('runs the worker’s jobs there: a room expires on time and its member hears it', { timeout: 30_000 }, async () => {
    const [a, b] = cluster.pods;
    const owner = await makeUser('정하늘');
    const member = await makeUser('한바다');
    // Long enough that the join below is done well before the expiry, on a loaded machine too.
    const { roomId } = await createRoom(a!.url, owner, { ttlSeconds: 4 });
    const socket = await connect(b!.url, member.token);
    // Listening before the join: on a slow machine the ack and the expiry can arrive in one read.
    const expired = nextEvent(socket, 'room-expired', 20_000);
    expect(await emitAck(socket, 'join-room', { roomId })).toMatchObject({ ok: true });
    expect(await expired).toMatchObject({ roomId });
  });

  it('runs every presence script on the cluster, dead-pod collection included', async () => {
    const client = new Cluster(redisCluster.nodes.map(({ host, port }) => ({ host, port })), { redisOptions: { password: PASSWORD } });
    try {
      // A prefix of its own: the pods' and the worker's presence stay untouched.
      const store = createPresenceStore(client, stateKeyPrefix(`${cluster.redisPrefix}-scripts`, { kind: 'cluster', nodes: [] }));
      expect(await store.connect('pod-a', 'user-1')).toEqual({ online: true, podWasMissing: true });
      // The script reads pod-a's counts, under a name it builds itself: the same slot.
      expect(await store.connect('pod-b', 'user-1')).toMatchObject({ online: false });
      expect(await store.connect('pod-b', 'user-2')).toMatchObject({ online: true });
      expect(await store.heartbeat('pod-b', new Map([['user-2', 1]]))).toMatchObject({ podWasMissing: false });
      expect(await store.onlineUsers(['user-1', 'user-2', 'user-3'])).toEqual(new Set(['user-1', 'user-2']));
      expect(await store.disconnect('pod-b', 'user-1')).toBe(false);
      // Every pod stale: both collected, their users offline, announced and settled.
      expect(await store.collectDeadPods(-60_000)).toBe(2);
      const dead = await store.collectedDeadPods();
      expect(dead.flatMap((pod) => pod.offlineUserIds).sort()).toEqual(['user-1', 'user-2']);
      for (const pod of dead) await store.settleDeadPod(pod);
      expect(await store.collectedDeadPods()).toEqual([]);
      expect(await store.onlineUsers(['user-1', 'user-2'])).toEqual(new Set());
    } finally {
      client.disconnect();
    }
  });

  it('takes the users of a SIGKILLed gateway offline through the worker’s presence GC', { timeout: 60_000 }, async () => {
    const [a] = cluster.pods;
    const gateway = await doomedGateway;
    const alice = await makeUser('김철수');
    const dave = await makeUser('정다운');
    const { roomId } = await createRoom(a!.url, alice);
    const watcher = await connect(a!.url, alice.token);
    expect(await emitAck(watcher, 'join-room', { roomId })).toMatchObject({ ok: true });
    const onDoomed = await connect(gateway.url, dave.token);
    expect(await emitAck(onDoomed, 'join-room', { roomId })).toMatchObject({ ok: true });
    const heard = record(watcher, 'presence') as { userId: string; online: boolean }[];
    await gateway.kill('SIGKILL');
    // The pod's heartbeat goes stale after 15 s; the worker then collects it.
    await expect.poll(() => heard.filter((event) => event.userId === dave.userId && !event.online), { timeout: 40_000, interval: 200 }).toEqual([
      { roomId, userId: dave.userId, nicknameMask: '정**', online: false },
    ]);
  });

  it('keeps the multi-key state under the prefix’s hash tag, and spreads the rate limits', async () => {
    const client = new Cluster(redisCluster.nodes.map(({ host, port }) => ({ host, port })), { redisOptions: { password: PASSWORD } });
    try {
      await new Promise((resolve) => client.once('ready', resolve));
      const keys: string[] = [];
      const tag = `{${cluster.redisPrefix}}`;
      for (const node of client.nodes('master')) {
        // The apps' keys only (not the presence script test's own prefix).
        keys.push(...(await node.keys(`*${cluster.redisPrefix}*`)).filter((key) => key.startsWith(tag) || key.startsWith(`${cluster.redisPrefix}:`)));
      }
      // Presence, socket places and BullMQ all under the tag (one slot), none outside it.
      for (const group of [':presence:', ':sockets', ':bull:']) {
        const inGroup = keys.filter((key) => key.includes(group));
        expect(inGroup.length, group).toBeGreaterThan(0);
        for (const key of inGroup) expect(key.startsWith(tag), key).toBe(true);
      }
      // The send budget's keys keep the plain prefix: each is its own script's one key.
      expect(keys.some((key) => key.startsWith(`${cluster.redisPrefix}:rl:`))).toBe(true);
    } finally {
      client.disconnect();
    }
  });

  it('carries on when the state’s slot moves to a master added to the running cluster', { timeout: 60_000 }, async () => {
    const [a, b] = cluster.pods;
    const tag = `{${cluster.redisPrefix}}`;
    const added = await redisCluster.addMaster();
    // Presence, socket places, the occupancy queue and BullMQ's queues, keys and all, as
    // `redis-cli --cluster reshard` moves a slot.
    await redisCluster.moveSlot(calculateSlot(tag), added);
    expect(await redisCluster.nodeIndexOf(tag)).toBe(added);

    const alice = await makeUser('서유리');
    const bob = await makeUser('남궁민');
    const { roomId } = await createRoom(a!.url, alice);
    await joinedOffline(b!.url, bob, roomId);
    const watcher = await connect(a!.url, alice.token);
    expect(await emitAck(watcher, 'join-room', { roomId })).toMatchObject({ ok: true });
    const online = nextEvent(watcher, 'presence', 10_000);
    const bobOnB = await connect(b!.url, bob.token);
    expect(await online).toMatchObject({ roomId, userId: bob.userId, online: true });
    bobOnB.close();

    // The worker's queues, now on the added master: a room still expires on time.
    const shortLived = await createRoom(a!.url, alice, { ttlSeconds: 3 });
    const expired = nextEvent(watcher, 'room-expired', 30_000);
    expect(await emitAck(watcher, 'join-room', { roomId: shortLived.roomId })).toMatchObject({ ok: true });
    expect(await expired).toMatchObject({ roomId: shortLived.roomId });
  });
});
