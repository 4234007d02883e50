/**
 * The scenarios. Each one runs a steady load (senders + observers spread over every pod, 2 to 4
 * of them: `--pods=N`) around one fault, stops the load, lets retries finish (bounded), and hands everything to the checker.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { NewMessagePayload } from '@chat/protocol';
import { check, waitObservers, type CheckResult } from './checker.ts';
import { Client, http, makeUser, Observer, Sender, type SendOp, type User } from './clients.ts';
import type { Cluster } from './cluster.ts';
import { sleep, waitFor } from './infra.ts';
import { awaitWebhooks, checkWebhooks } from './webhook-checker.ts';
import { WebhookReceiver } from './webhook-receiver.ts';

export interface ScenarioResult extends CheckResult {
  name: string;
  /** Fault lifted (or one-shot fault done) → last failed / unknown send attempt ended. */
  recoveryMs: number | null;
  /** Longest time a send waited for an UNAVAILABLE answer during the fault. */
  maxUnavailableMs: number | null;
  notes: string[];
  ok: boolean;
  durationMs: number;
}

export interface FaultContext {
  cluster: Cluster;
  notes: string[];
  /** Marks a failed expectation of the fault itself (worker did not resume, …). */
  fail(note: string): void;
  owner: User;
  roomIds: string[];
  /** Clients of the crowd scenario, to watch their reconnects. */
  crowd: Client[];
}

export interface ScenarioSpec {
  name: string;
  quick: boolean;
  /** Runs only on this kind of bus (`--bus=`); unset: on both. */
  bus?: 'standalone' | 'cluster';
  /** Runs only with the state on this (`--state=`); unset: on both. */
  state?: 'standalone' | 'cluster';
  rooms?: number;
  senders?: number;
  observersPerPod?: number;
  crowd?: number;
  intervalMs?: [number, number];
  warmupMs?: number;
  recoverMs?: number;
  /** When set, the last failed send must end within this long after the fault is lifted. */
  maxRecoveryMs?: number;
  before?(cluster: Cluster): Promise<void>;
  /** Injects the fault and lifts it; returns when it was lifted. */
  fault(context: FaultContext): Promise<number>;
  /**
   * After the load stopped and the checker ran: a scenario's own check (scenario 8's webhook
   * receiver); its lost / duplicated add to the row's.
   */
  verify?(context: FaultContext, ops: SendOp[]): Promise<{ lost: number; duplicated: number }>;
  /** Always, last: undoes what `before` set up for this scenario only. */
  after?(cluster: Cluster): Promise<void>;
}

const ACK_TIMEOUT_MS = 6000;

async function createRooms(url: string, owner: User, count: number): Promise<string[]> {
  const ids: string[] = [];
  for (let index = 0; index < count; index++) {
    const { status, body } = await http(url, 'POST', '/api/rooms', { token: owner.token, body: { name: `fault room ${index}` } });
    if (status !== 201) throw new Error(`create room: ${status} ${JSON.stringify(body)}`);
    ids.push(body.roomId as string);
  }
  return ids;
}

async function joinAll(client: Client, roomIds: string[]): Promise<void> {
  for (const roomId of roomIds) {
    const joined = await waitFor(async () => {
      if (!(await client.ready(5000))) return false;
      const response = await client.emit('join-room', { roomId }, 5000);
      return response.ok;
    }, 30_000, 200);
    if (!joined) throw new Error(`${client.user.nickname} could not join ${roomId}`);
  }
}

async function inBatches<T>(items: T[], size: number, task: (item: T) => Promise<void>): Promise<void> {
  for (let start = 0; start < items.length; start += size) await Promise.all(items.slice(start, start + size).map(task));
}

export async function runScenario(cluster: Cluster, spec: ScenarioSpec, log: (entry: object) => void): Promise<ScenarioResult> {
  try {
    return await runLoaded(cluster, spec, log);
  } finally {
    await spec.after?.(cluster);
  }
}

async function runLoaded(cluster: Cluster, spec: ScenarioSpec, log: (entry: object) => void): Promise<ScenarioResult> {
  const started = Date.now();
  await cluster.ensureHealthy();
  await spec.before?.(cluster);
  const urls = cluster.urls;
  const podCount = cluster.podCount;
  const notes: string[] = [];
  let faultOk = true;
  const roomCount = spec.rooms ?? 4;
  const owner = await makeUser('방장');
  const roomIds = await createRooms(urls()[0]!, owner, roomCount);

  // Seeds: one acknowledged message per room, the observers' first `after` anchor.
  const ownerClient = new Client(owner, urls, 0);
  void ownerClient.start();
  await joinAll(ownerClient, roomIds);
  const anchors = new Map<string, { seq: number; messageId: string }>();
  const seedOps: SendOp[] = [];
  for (const roomId of roomIds) {
    const clientMessageId = randomUUID();
    const response = await ownerClient.emit<NewMessagePayload>('send-message', { roomId, type: 'text', content: 'seed', clientMessageId }, 5000);
    if (!response.ok) throw new Error(`seed: ${response.error.code}`);
    anchors.set(roomId, { seq: response.data.seq, messageId: response.data.messageId });
    seedOps.push({
      userId: owner.userId,
      roomId,
      clientMessageId,
      content: 'seed',
      attempts: [],
      acked: { messageId: response.data.messageId, seq: response.data.seq },
      conflictingAck: false,
    });
  }
  ownerClient.close();

  // Observers: members of every room, `observersPerPod` homed on each pod.
  const observers: Observer[] = [];
  for (let index = 0; index < (spec.observersPerPod ?? 2) * podCount; index++) {
    const client = new Client(await makeUser(`관찰${index}`), urls, index % podCount);
    observers.push(new Observer(client, anchors));
  }
  await inBatches(observers, 10, async (observer) => {
    void observer.client.start();
    await joinAll(observer.client, roomIds);
  });

  // The crowd (scenario 6): idle members of one room each that follow the recovery rule too.
  const crowd: Client[] = [];
  const crowdObservers: Observer[] = [];
  for (let index = 0; index < (spec.crowd ?? 0); index++) {
    const roomId = roomIds[index % roomIds.length]!;
    const client = new Client(await makeUser(`군중${index}`), urls, index % podCount, [500, 3000]);
    crowd.push(client);
    crowdObservers.push(new Observer(client, new Map([[roomId, anchors.get(roomId)!]])));
  }
  await inBatches(crowdObservers, 50, async (observer) => {
    void observer.client.start();
    await joinAll(observer.client, [...observer.rooms.keys()]);
  });

  const senders: Sender[] = [];
  for (let index = 0; index < (spec.senders ?? 12); index++) {
    const client = new Client(await makeUser(`보냄${index}`), urls, index % podCount);
    void client.start();
    await joinAll(client, roomIds);
    senders.push(new Sender(client, roomIds, { ackTimeoutMs: ACK_TIMEOUT_MS, intervalMs: spec.intervalMs ?? [150, 350] }, log));
  }
  for (const sender of senders) sender.start();

  await sleep(spec.warmupMs ?? 3000);
  const faultAt = Date.now();
  log({ kind: 'fault', scenario: spec.name, at: faultAt });
  let liftedAt = faultAt;
  const context: FaultContext = {
    cluster,
    notes,
    fail(note) {
      faultOk = false;
      notes.push(`FAIL ${note}`);
    },
    owner,
    roomIds,
    crowd,
  };
  try {
    liftedAt = await spec.fault(context);
  } catch (error) {
    faultOk = false;
    notes.push(`FAIL fault step threw: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`);
    liftedAt = Date.now();
  }
  log({ kind: 'lifted', scenario: spec.name, at: liftedAt });
  // Keep the load on until sends succeed again (bounded), then for the recovery window: the
  // messages after the fault are what reveal a missed broadcast to the observers (a `seq` jump).
  const healthy = await waitFor(() => {
    const okSince = senders.flatMap((s) => s.ops).flatMap((op) => op.attempts).filter((a) => a.result === 'ok' && a.startedAt >= liftedAt);
    return okSince.length >= 20;
  }, 60_000, 200);
  if (!healthy) {
    faultOk = false;
    notes.push('FAIL sends not acknowledged again within 60 s of lifting the fault');
  }
  // Recovered means every pod, not just enough of them: a pod left wedged (a connection that
  // never answers again) still lets the other pods' senders reach the count above. So every
  // sender (they are spread over every pod) must have a send acknowledged after the fault was
  // lifted, within 30 s of the cluster answering again (one pod may take longer than the
  // others: a client reconnecting after a pod kill, say).
  const unanswered = () =>
    senders.filter((sender) => !sender.ops.some((op) => op.attempts.some((attempt) => attempt.result === 'ok' && attempt.startedAt >= liftedAt)));
  const everyPodBack = await waitFor(() => unanswered().length === 0, 30_000, 200);
  if (!everyPodBack) {
    faultOk = false;
    notes.push(`FAIL ${unanswered().length} senders had no send acknowledged within 30 s of the others (a pod left wedged)`);
  }
  await sleep(spec.recoverMs ?? 6000);
  // Stop new messages; those in flight retry (same clientMessageId) for at most 30 s more.
  await Promise.all(senders.map((sender) => sender.stop(Date.now() + 30_000)));

  const allObservers = [...observers, ...crowdObservers];
  const converged = await waitObservers(cluster.pg.admin, roomIds, allObservers, 20_000);
  notes.push(converged >= 0 ? `observers whole ${converged} ms after load stop` : 'observers not whole within 20 s');

  const ops = [...seedOps, ...senders.flatMap((sender) => sender.ops)];
  const result = await check(cluster.pg.admin, roomIds, ops, allObservers);
  if (result.seqGaps > 0) faultOk = false;
  if (spec.verify) {
    try {
      const own = await spec.verify(context, ops);
      result.lost += own.lost;
      result.duplicated += own.duplicated;
    } catch (error) {
      context.fail(`scenario check threw: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`);
    }
  }

  const attempts = ops.flatMap((op) => op.attempts);
  const bad = attempts.filter((attempt) => attempt.result !== 'ok' && attempt.startedAt >= faultAt);
  const lastBad = Math.max(...bad.map((attempt) => attempt.endedAt), 0);
  const recoveryMs = bad.length === 0 ? 0 : Math.max(0, lastBad - liftedAt);
  if (spec.maxRecoveryMs !== undefined && recoveryMs > spec.maxRecoveryMs) {
    faultOk = false;
    notes.push(`FAIL sends still failing ${recoveryMs} ms after the fault was lifted (bound ${spec.maxRecoveryMs} ms)`);
  }
  const unavailable = attempts.filter((attempt) => attempt.detail === 'UNAVAILABLE');
  const maxUnavailableMs = unavailable.length === 0 ? null : Math.max(...unavailable.map((a) => a.endedAt - a.startedAt));
  const retriedThenAcked = ops.filter((op) => op.acked && op.attempts.some((a) => a.result !== 'ok')).length;
  const failures = new Map<string, number>();
  for (const attempt of bad) failures.set(attempt.detail ?? '?', (failures.get(attempt.detail ?? '?') ?? 0) + 1);
  notes.push(
    `attempts ${attempts.length}, not ok ${bad.length} (${[...failures].map(([k, v]) => `${k}: ${v}`).join(', ') || '—'}), retried then acked ${retriedThenAcked}`,
  );
  const resyncs = allObservers.reduce((sum, o) => sum + o.resyncs, 0);
  const fetches = allObservers.reduce((sum, o) => sum + o.fetches, 0);
  notes.push(`observer catch-up fetches ${fetches}, resync events ${resyncs}`);
  if (result.unknownStored > 0) notes.push(`${result.unknownStored} never-acked op(s) stored`);

  for (const client of [...senders.map((s) => s.client)]) client.close();
  for (const observer of allObservers) observer.close();

  const ok = faultOk && result.lost === 0 && result.duplicated === 0 && result.observersIncomplete === 0 && result.seqGaps === 0;
  return { name: spec.name, ...result, recoveryMs, maxUnavailableMs, notes, ok, durationMs: Date.now() - started };
}

// ---------------------------------------------------------------------------------------------
// Fault helpers

/**
 * The worker resumes by itself: a room that expires now is swept within `timeoutMs`. (Created
 * through pod 1: any pod would do; scenario 8 kills pod 0.)
 */
async function probeWorker(context: FaultContext, timeoutMs = 20_000): Promise<void> {
  const url = context.cluster.urls()[1]!;
  const { status, body } = await http(url, 'POST', '/api/rooms', { token: context.owner.token, body: { name: 'probe', ttlSeconds: 1 } });
  if (status !== 201) {
    context.fail(`worker probe: room not created (${status})`);
    return;
  }
  const started = Date.now();
  const swept = await waitFor(async () => {
    const rows = await context.cluster.pg.admin`select expired_at from rooms where id = ${body.roomId as string}`;
    return rows[0]?.expired_at !== null && rows[0]?.expired_at !== undefined;
  }, timeoutMs, 250);
  if (swept) context.notes.push(`worker resumed: probe room swept ${Date.now() - started} ms after creation`);
  else context.fail(`worker did not sweep a probe room within ${timeoutMs} ms`);
}

async function pgTerminateAll(context: FaultContext): Promise<number> {
  const rows = await context.cluster.pg.admin`
    select pg_terminate_backend(pid) as killed from pg_stat_activity
    where datname = 'chat' and pid <> pg_backend_pid() and backend_type = 'client backend'`;
  return rows.length;
}

/**
 * Scenario 8 (issue 20): the worker delivers webhooks to a receiver in this process; the receiver
 * goes down, gateway-0 is SIGKILLed and restarted meanwhile (scenario 1's mechanics), the
 * receiver comes back; then it must hold every change of every room exactly once after dedupe.
 */
function webhookScenario(): ScenarioSpec {
  const endpointId = 'fault-suite';
  const receiver = new WebhookReceiver(randomBytes(24).toString('hex'));
  let deliveredBeforeOutage = 0;
  return {
    name: '8 webhook receiver down + gateway SIGKILL',
    quick: false,
    async before(cluster) {
      await receiver.start();
      // Earlier scenarios' rooms are not this one's subject: the new endpoint starts past their
      // changes (its cursors), so their backlog does not share the worker with this scenario's.
      await cluster.pg.admin`
        insert into webhook_cursors (endpoint_id, room_id, delivered_change_seq)
        select ${endpointId}, id, last_change_seq from rooms on conflict do nothing`;
      await cluster.worker?.kill('SIGTERM');
      await cluster.startWorker({
        WEBHOOK_ENDPOINTS: JSON.stringify([{ id: endpointId, url: `http://127.0.0.1:${receiver.port}/hooks`, secret: receiver.secret }]),
        WEBHOOK_POLL_INTERVAL_MS: '250',
      });
    },
    async fault({ cluster, notes, fail }) {
      deliveredBeforeOutage = receiver.deliveries.length;
      if (deliveredBeforeOutage === 0) fail('no webhook received before the outage');
      // It goes down the hard way: POSTs stored but not answered (for up to 3 s), then refused.
      const unansweredBefore = receiver.unanswered;
      await receiver.stop(3000);
      const downAt = Date.now();
      await sleep(1000);
      await cluster.killGateway(0, 'SIGKILL');
      const at = Date.now();
      await sleep(4000);
      await cluster.startGateway(0);
      await sleep(1000);
      await receiver.start();
      notes.push(
        `receiver crashed with ${receiver.unanswered - unansweredBefore} POST(s) stored but unanswered, then down ` +
          `${((Date.now() - downAt) / 1000).toFixed(1)} s (refusing); gateway-0 SIGKILLed 1 s in, restarted after 4 s`,
      );
      return at;
    },
    async verify({ cluster, notes, fail, owner, roomIds }, ops) {
      // The changes route through pod 1, one that was not killed (any of them would do).
      const { waitedMs, feeds } = await awaitWebhooks(receiver, cluster.urls()[1]!, owner.token, roomIds, 60_000);
      if (waitedMs < 0) fail('receiver not holding every change within 60 s of load stop');
      else notes.push(`receiver held every change ${waitedMs} ms after load stop`);
      const result = checkWebhooks(receiver, feeds, ops);
      const afterOutage = new Set(receiver.deliveries.slice(deliveredBeforeOutage).flatMap((d) => d.events.map((e) => `${e.roomId}:${e.changeSeq}`))).size;
      notes.push(...result.notes, `webhook: ${afterOutage} distinct event(s) received after the receiver was back`);
      for (const problem of result.problems) fail(problem);
      return { lost: result.lost, duplicated: result.duplicated };
    },
    async after(cluster) {
      await receiver.stop();
      // The next scenarios get the suite's usual worker, without the endpoint.
      await cluster.worker?.kill('SIGTERM');
      await cluster.startWorker();
    },
  };
}

export const SCENARIOS: ScenarioSpec[] = [
  {
    name: '1 gateway SIGKILL',
    quick: true,
    // One pod down, whatever the pod count: gateway-0 (its clients move on to the next pod),
    // the other pods keep serving.
    async fault({ cluster, notes }) {
      await cluster.killGateway(0, 'SIGKILL');
      const at = Date.now();
      await sleep(4000);
      await cluster.startGateway(0);
      notes.push('gateway-0 killed, restarted after 4 s');
      return at;
    },
  },
  {
    name: '2 crash after COMMIT',
    quick: true,
    // One pod (gateway-0) crashes, whatever the pod count.
    async before(cluster) {
      await cluster.killGateway(0, 'SIGTERM');
      await cluster.startGateway(0, { FAULT_CRASH_AFTER_COMMIT: '150' });
    },
    async fault({ cluster, notes, fail }) {
      const gateway = cluster.gateways[0]!;
      const crashed = await Promise.race([gateway.exited.then(() => true), sleep(30_000).then(() => false)]);
      const at = Date.now();
      if (!crashed) fail('gateway-0 did not crash within 30 s');
      else notes.push(`gateway-0 crashed after commit #150 (${/crashing after commit #(\d+)/.exec(gateway.tail())?.[1] ?? '?'})`);
      cluster.gateways[0] = null;
      await sleep(2000);
      await cluster.startGateway(0);
      return at;
    },
  },
  {
    name: '3a Redis restart (10 s down)',
    quick: true,
    async fault(context) {
      const { cluster, notes } = context;
      await cluster.redis.stop();
      await sleep(10_000);
      await cluster.redis.start();
      const at = Date.now();
      notes.push('redis stopped 10 s (data lost), restarted');
      await probeWorker(context);
      return at;
    },
  },
  {
    name: '3b Redis SIGSTOP 10 s',
    quick: false,
    async fault(context) {
      context.cluster.redis.freeze(true);
      await sleep(10_000);
      context.cluster.redis.freeze(false);
      const at = Date.now();
      await probeWorker(context);
      return at;
    },
  },
  {
    name: '3c Redis CLIENT KILL pubsub',
    quick: false,
    // The pub/sub connections it kills are the bus's: on a cluster bus the state Redis has none.
    bus: 'standalone',
    async fault({ cluster, notes, fail }) {
      const first = await cluster.redis.killPubSubClients();
      await sleep(3000);
      const second = await cluster.redis.killPubSubClients();
      notes.push(`killed ${first} + ${second} pub/sub connections`);
      // At least one per pod (each gateway's bus subscriber).
      if (first < cluster.podCount) fail(`fewer than ${cluster.podCount} pub/sub connections found to kill`);
      return Date.now();
    },
  },
  {
    name: '4a Postgres stop -m immediate',
    quick: true,
    // The pools retry at least every second (packages/db client.ts); with the driver's default
    // backoff (up to 20 s after a few refusals) sends failed for a median 3 s and up to 12.6 s
    // after Postgres was back (16 runs), against 0.0 s in 8 of 8 runs since.
    maxRecoveryMs: 5000,
    async fault({ cluster, notes }) {
      await cluster.pg.stopImmediate();
      await sleep(5000);
      await cluster.pg.start();
      notes.push('postgres down 5 s (immediate), restarted with crash recovery');
      return Date.now();
    },
  },
  {
    name: '4b Postgres SIGSTOP 10 s',
    quick: false,
    async fault({ cluster }) {
      cluster.pg.freeze(true);
      await sleep(10_000);
      cluster.pg.freeze(false);
      return Date.now();
    },
  },
  {
    name: '4c pg_terminate_backend',
    quick: false,
    async fault(context) {
      const first = await pgTerminateAll(context);
      await sleep(2000);
      const second = await pgTerminateAll(context);
      context.notes.push(`terminated ${first} + ${second} sessions`);
      return Date.now();
    },
  },
  {
    name: '4d LOCK TABLE messages 10 s',
    quick: false,
    async fault({ cluster }) {
      await cluster.pg.admin.begin(async (tx) => {
        await tx`lock table messages in access exclusive mode`;
        await sleep(10_000);
      });
      return Date.now();
    },
  },
  {
    name: '5 worker SIGKILL mid-sweep',
    quick: true,
    async fault(context) {
      const { cluster, notes, fail } = context;
      const sql = cluster.pg.admin;
      // Four rooms that expire in two seconds with 20 000 members each: a sweep of minutes' worth
      // of rows in batches of SWEEP_BATCH_SIZE (500), long enough to be killed in the middle.
      // Memberships are the sweep's per-room purge; the rooms' messages are not deleted room by
      // room (their expiry day's partition is dropped whole, docs/partitions.md).
      const doomed = [randomUUID(), randomUUID(), randomUUID(), randomUUID()];
      const perRoom = 20_000;
      await sql.begin(async (tx) => {
        for (const id of doomed) {
          await tx`insert into rooms (id, name, created_by, created_at, expires_at, last_seq, member_count)
                   values (${id}, 'doomed', ${context.owner.userId}, now() - interval '1 hour', now() + interval '2 seconds', 1000, ${perRoom})`;
          await tx`insert into messages (id, room_id, user_id, type, content, seq, created_at, expires_at)
                   select gen_random_uuid(), ${id}, ${context.owner.userId}, 'text', 'doomed', g, now(), now() + interval '2 seconds'
                   from generate_series(1, 1000) g`;
          await tx`with added as (
                     insert into users (id, nickname) select gen_random_uuid(), 'doomed' || g from generate_series(1, ${perRoom}::int) g
                     returning id)
                   insert into room_members (room_id, user_id) select ${id}, id from added`;
        }
      });
      const total = doomed.length * perRoom;
      const count = async () =>
        Number((await sql`select count(*)::int as n from room_members where room_id in ${sql(doomed)}`)[0]?.n ?? 0);
      const midSweep = await waitFor(async () => {
        const left = await count();
        return left < total && left > 0;
      }, 20_000, 20);
      const left = await count();
      await cluster.worker?.kill('SIGKILL');
      const at = Date.now();
      if (!midSweep) fail(`sweep not caught mid-way (rows left ${left} of ${total})`);
      else notes.push(`worker killed with ${left} of ${total} doomed rows left`);
      await sleep(1500);
      const leftAfterKill = await count();
      await cluster.startWorker();
      const done = await waitFor(async () => {
        const rows = await sql`select count(*)::int as n from rooms where id in ${sql(doomed)} and expired_at is null`;
        return Number(rows[0]?.n) === 0 && (await count()) === 0;
      }, 60_000, 250);
      if (done) notes.push(`restarted worker finished the sweep (${leftAfterKill} rows were left) in ${Date.now() - at} ms`);
      else fail(`doomed rooms not purged 60 s after the worker restart (${await count()} rows left)`);
      return at;
    },
  },
  webhookScenario(),
  {
    name: '7 bus master SIGKILL 5 s + restart',
    quick: true,
    bus: 'cluster',
    async fault({ cluster, notes, fail, roomIds }) {
      const bus = cluster.busCluster;
      if (!bus) {
        fail('no bus cluster');
        return Date.now();
      }
      // The master of the first room's channel: its broadcasts and subscriptions go with it.
      const channel = `${cluster.services.redisPrefix}:socket.io#/socket#room:${roomIds[0]}#`;
      const victim = await bus.nodeIndexOf(channel);
      const served = (await Promise.all(roomIds.map((roomId) => bus.nodeIndexOf(`${cluster.services.redisPrefix}:socket.io#/socket#room:${roomId}#`)))).filter(
        (index) => index === victim,
      ).length;
      await bus.stopNode(victim);
      const at = Date.now();
      await sleep(5000);
      await bus.startNode(victim);
      notes.push(`bus master ${victim} (port ${bus.nodes[victim]!.port}, ${served} of ${roomIds.length} rooms' channels) killed, restarted after 5 s`);
      return at;
    },
  },
  {
    name: '9 state master SIGKILL 5 s + restart',
    quick: true,
    bus: 'cluster',
    state: 'cluster',
    async fault(context) {
      const { cluster, notes, fail } = context;
      const nodes = cluster.busCluster;
      if (!nodes) {
        fail('no cluster');
        return Date.now();
      }
      // The master of the hash tag {prefix}: presence, socket places and BullMQ's queues (it
      // comes back empty, as a restarted Redis does); the rate limits on it go with it too.
      const victim = await nodes.nodeIndexOf(`{${cluster.services.redisPrefix}}`);
      await nodes.stopNode(victim);
      await sleep(5000);
      await nodes.startNode(victim);
      const at = Date.now();
      notes.push(`state master ${victim} (port ${nodes.nodes[victim]!.port}) killed, restarted empty after 5 s`);
      await probeWorker(context);
      return at;
    },
  },
  {
    // Every pod at once (both with the default two, all N with --pods=N): the crowd has nowhere
    // to go until they answer again.
    name: '6 all gateways restart + crowd',
    quick: false,
    rooms: 10,
    senders: 8,
    crowd: 1000,
    intervalMs: [300, 600],
    recoverMs: 8000,
    async fault({ cluster, notes, fail, crowd }) {
      const pods = cluster.ports.map((_, index) => index);
      await Promise.all(pods.map((index) => cluster.killGateway(index)));
      const at = Date.now();
      await sleep(1000);
      await Promise.all(pods.map((index) => cluster.startGateway(index)));
      const upAt = Date.now();
      const back = await waitFor(() => crowd.every((client) => client.connected), 60_000, 100);
      const allAt = Date.now();
      const perPod = pods.map((index) => crowd.filter((c) => c.connected && c.currentUrl === cluster.urls()[index]).length);
      if (back) {
        notes.push(
          `${crowd.length} crowd clients all reconnected ${allAt - at} ms after the kill, ${Math.max(0, allAt - upAt)} ms after all ${pods.length} pods answered /readyz (${perPod.join(' / ')} per pod)`,
        );
      }
      else fail(`${crowd.filter((c) => !c.connected).length} of ${crowd.length} crowd clients not back within 60 s`);
      return at;
    },
  },
];
