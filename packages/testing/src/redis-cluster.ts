import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { freePort } from './ports.ts';
import type { TlsFiles } from './tls-files.ts';

const run = promisify(execFile);

/**
 * A throw-away Redis Cluster on loopback (three masters, by default no replicas) for tests, the
 * fault suite, benchmarks and `pnpm redis:cluster`. Free of vitest, so plain tsx scripts can import it
 * as `@chat/testing/redis-cluster`. Needs `redis-server` ≥ 7 and `redis-cli` on the PATH.
 */
export interface RedisClusterNode {
  host: string;
  port: number;
  /** The cluster bus port (Redis 7 `cluster-port`), chosen free rather than port + 10000. */
  busPort: number;
  /** The nodes' `requirepass` (and `masterauth`), when the cluster was started with one. */
  password?: string;
  /** Set when the nodes speak TLS only (clients, replication and the cluster bus): a client's options. */
  tls?: { ca: string; cert: string; key: string };
}

export interface LocalRedisCluster {
  nodes: readonly RedisClusterNode[];
  /** `host:port,host:port,…`: the value for REDIS_BUS_CLUSTER_NODES. */
  nodesString: string;
  /** The temporary directory holding the nodes' config, pid and log files. */
  dir: string;
  /** SIGKILLs one node (as a crashed host): its slots are unserved until startNode. */
  stopNode(index: number): Promise<void>;
  /** Starts a stopped node again from its config file (if it is not running) and waits for `cluster_state:ok`. */
  startNode(index: number): Promise<void>;
  /** The index of the master whose slots hold this key or channel name (asked of a live node). */
  nodeIndexOf(key: string): Promise<number>;
  /**
   * After `stopNode(index)` of a master with a replica: resolves with the index of the replica
   * once the cluster has promoted it to serve the master's slots and reports `cluster_state:ok`.
   */
  promotedFor(index: number, timeoutMs?: number): Promise<number>;
  /** The index of a live replica of the master at `index`. */
  replicaOf(index: number): Promise<number>;
  /**
   * A manual failover, as an SRE upgrades a cluster without downtime: `CLUSTER FAILOVER` on the
   * replica at `replicaIndex`, which takes its master's slots (the master, alive, becomes its
   * replica); resolves once it is master and the cluster is ok.
   */
  failOverTo(replicaIndex: number, timeoutMs?: number): Promise<void>;
  /** Starts one more node and adds it to the cluster as a master serving no slot yet; its index. */
  addMaster(): Promise<number>;
  /**
   * Moves hash slot `slot` (keys included) to the master at `toIndex` while the cluster serves,
   * as `redis-cli --cluster reshard` does slot by slot: IMPORTING / MIGRATING, MIGRATE, then
   * every master told the new owner.
   */
  moveSlot(slot: number, toIndex: number): Promise<void>;
  /** Kills every node and removes the directory. */
  close(): Promise<void>;
}

const HOST = '127.0.0.1';
/** Bounds on waiting for the cluster to form (or re-form after a restart). */
const READY_TIMEOUT_MS = 20_000;
const POLL_MS = 100;

async function startServer(dir: string, node: RedisClusterNode, tls: TlsFiles | undefined): Promise<void> {
  // A restart right after a SIGKILL can be refused for a moment (the server exits non-zero
  // before it forks): a child the killed server had forked (a replica's sync) may still hold the
  // lock of its cluster config file. Seen once on a loaded machine; try again, bounded.
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    try {
      await launchServer(dir, node, tls);
      break;
    } catch (error) {
      if (Date.now() > deadline) {
        const stderr = (error as { stderr?: string }).stderr ?? '';
        throw new Error(`redis-server on ${node.port} did not start: ${(error as Error).message}\n${stderr}`);
      }
      await pause();
    }
  }
  await waitAnswers(dir, node);
}

async function launchServer(dir: string, node: RedisClusterNode, tls: TlsFiles | undefined): Promise<void> {
  await run('redis-server', [
    ...(tls ? [...tls.redisArgs(node.port), '--tls-cluster', 'yes'] : ['--port', String(node.port)]),
    '--cluster-port', String(node.busPort),
    '--bind', HOST,
    '--cluster-enabled', 'yes',
    '--cluster-config-file', join(dir, `${node.port}.conf`),
    // A few seconds, not the default 15: a killed node is noticed while a test still runs.
    '--cluster-node-timeout', '3000',
    // Without it a single dead master stops the whole cluster; with it the others keep
    // serving their slots, as an SRE would configure a bus where each shard stands alone.
    '--cluster-require-full-coverage', 'no',
    '--save', '',
    '--appendonly', 'no',
    // A replica's first sync at once, not after the default 5 s: until it has synced it cannot
    // be promoted.
    '--repl-diskless-sync-delay', '0',
    '--dir', dir,
    '--pidfile', join(dir, `${node.port}.pid`),
    '--logfile', join(dir, `${node.port}.log`),
    '--daemonize', 'yes',
    ...(node.password ? ['--requirepass', node.password, '--masterauth', node.password] : []),
  ]);
}

/**
 * `--daemonize yes` returns once the server has forked, before it listens: a `redis-cli
 * --cluster create` right after it was refused now and then on a loaded machine ("Could not
 * connect to Redis at 127.0.0.1:P: Connection refused"). Wait for a PING answer instead; a
 * server that never answers (its port taken since freePort chose it) fails with its log.
 */
async function waitAnswers(dir: string, node: RedisClusterNode): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (await answers(node)) return;
    await pause();
  }
  const log = await readFile(join(dir, `${node.port}.log`), 'utf8').catch(() => '');
  throw new Error(`redis-server on ${node.port} did not answer within ${READY_TIMEOUT_MS} ms:\n${log.slice(-2000)}`);
}

async function pidOf(dir: string, node: RedisClusterNode): Promise<number | null> {
  const text = await readFile(join(dir, `${node.port}.pid`), 'utf8').catch(() => '');
  const pid = Number(text.trim());
  return Number.isInteger(pid) && pid > 0 ? pid : null;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function killNode(dir: string, node: RedisClusterNode): Promise<void> {
  const pid = await pidOf(dir, node);
  if (pid === null || !alive(pid)) return;
  process.kill(pid, 'SIGKILL');
  const deadline = Date.now() + 5000;
  while (alive(pid) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
}

async function withNode<T>(node: RedisClusterNode, use: (client: Redis) => Promise<T>): Promise<T> {
  const client = new Redis({
    host: node.host,
    port: node.port,
    ...(node.password ? { password: node.password } : {}),
    ...(node.tls ? { tls: { ...node.tls } } : {}),
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: 1000,
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return await use(client);
  } finally {
    client.disconnect();
  }
}

async function clusterInfo(node: RedisClusterNode): Promise<string> {
  return withNode(node, async (client) => String(await client.cluster('INFO'))).catch(() => '');
}

/** Whether the node answers a PING now. */
async function answers(node: RedisClusterNode): Promise<boolean> {
  return (await withNode(node, (client) => client.ping()).catch(() => '')) === 'PONG';
}

/** The slot map as `node` knows it (CLUSTER SLOTS). */
function slotsOf(node: RedisClusterNode) {
  return withNode(node, (client) => client.cluster('SLOTS'));
}

const pause = () => new Promise((resolve) => setTimeout(resolve, POLL_MS));

/** Redis drops a manual failover its master has not answered after 5 s (CLUSTER_MF_TIMEOUT). */
const MANUAL_FAILOVER_RETRY_MS = 6000;

/**
 * Every node of `nodes` reports `cluster_state:ok` and knows `known` nodes (so clients see one
 * topology).
 */
async function waitClusterOk(nodes: readonly RedisClusterNode[], known = nodes.length): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    const infos = await Promise.all(nodes.map(clusterInfo));
    const ok = infos.every(
      (info) => info.includes('cluster_state:ok') && info.includes(`cluster_known_nodes:${known}`) && info.includes('cluster_slots_ok:16384'),
    );
    if (ok) return;
    await pause();
  }
  throw new Error(`Redis Cluster ${nodes.map((n) => n.port).join(',')} not ok within ${READY_TIMEOUT_MS} ms`);
}

/** redis-cli's options to reach the nodes: their password, TLS with the test certificates. */
function cliOptions(password: string | undefined, tls: TlsFiles | undefined): string[] {
  return [
    ...(password ? ['-a', password, '--no-auth-warning'] : []),
    ...(tls ? ['--tls', '--cacert', tls.caFile, '--cert', tls.clientCertFile, '--key', tls.clientKeyFile] : []),
  ];
}

/** `count` nodes are replicas whose link to their master is up (their first sync done). */
async function waitReplicasSynced(nodes: readonly RedisClusterNode[], count: number): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    const infos = await Promise.all(nodes.map((node) => withNode(node, (client) => client.info('replication')).catch(() => '')));
    if (infos.filter((info) => info.includes('role:slave') && info.includes('master_link_status:up')).length === count) return;
    await pause();
  }
  throw new Error(`the cluster's ${count} replicas did not sync within ${READY_TIMEOUT_MS} ms`);
}

/** Attempts at forming the cluster, each on fresh ports: a port freePort chose may be taken before redis-server binds it. */
const FORM_ATTEMPTS = 3;

async function formCluster(
  masters: number,
  replicas: number,
  password: string | undefined,
  tls: TlsFiles | undefined,
): Promise<{ dir: string; nodes: RedisClusterNode[] }> {
  const dir = await mkdtemp(join(tmpdir(), 'chat-redis-cluster-'));
  const nodes: RedisClusterNode[] = [];
  const clientTls = tls ? await tls.clientOptions() : undefined;
  try {
    for (let index = 0; index < masters * (1 + replicas); index++) {
      nodes.push({ host: HOST, port: await freePort(), busPort: await freePort(), ...(password ? { password } : {}), ...(clientTls ? { tls: clientTls } : {}) });
    }
    for (const node of nodes) await startServer(dir, node, tls);
    await run('redis-cli', [
      '--cluster', 'create',
      ...nodes.map((node) => `${node.host}:${node.port}`),
      '--cluster-replicas', String(replicas),
      '--cluster-yes',
      ...cliOptions(password, tls),
    ]);
    await waitClusterOk(nodes);
    if (replicas > 0) await waitReplicasSynced(nodes, masters * replicas);
    return { dir, nodes };
  } catch (error) {
    await Promise.allSettled(nodes.map((node) => killNode(dir, node)));
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}

/**
 * `password`: every node requires it (`requirepass`, and `masterauth` between nodes). `tls`: the
 * nodes speak TLS only, with these certificates (clients must present one signed by its CA).
 * `replicas`: replicas per master (redis-cli places them; the first `masters` nodes start as the
 * masters).
 */
export async function startRedisCluster(
  options: { masters?: number; replicas?: number; password?: string; tls?: TlsFiles } = {},
): Promise<LocalRedisCluster> {
  const masters = options.masters ?? 3;
  const replicas = options.replicas ?? 0;
  if (masters < 3) throw new Error('a Redis Cluster needs at least three masters');
  let formed: { dir: string; nodes: RedisClusterNode[] } | undefined;
  for (let attempt = 1; !formed; attempt++) {
    try {
      formed = await formCluster(masters, replicas, options.password, options.tls);
    } catch (error) {
      if (attempt >= FORM_ATTEMPTS) throw error;
    }
  }
  const { dir, nodes } = formed;
  /** A slot each stopped master served, by index. */
  const slotServedBeforeStop = new Map<number, number>();
  /** Any node that answers (one may have been stopped). */
  const liveNode = async (): Promise<RedisClusterNode> => {
    for (const node of nodes) if (await answers(node)) return node;
    throw new Error('no node of the cluster answers');
  };
  const indexServing = (ranges: [number, number, ...[string, number, ...unknown[]][]][], slot: number) => {
    const range = ranges.find(([from, to]) => slot >= from && slot <= to);
    return nodes.findIndex((node) => node.port === range?.[2]?.[1]);
  };

  let closed = false;
  return {
    nodes,
    nodesString: nodes.map((node) => `${node.host}:${node.port}`).join(','),
    dir,
    async stopNode(index) {
      const node = nodes[index];
      if (!node) throw new Error(`no node ${index}`);
      // Which slot it served, if a master: promotedFor looks for that slot's next owner.
      const ranges = await slotsOf(await liveNode()).catch(() => []);
      const range = ranges.find(([, , master]) => master?.[1] === node.port);
      if (range) slotServedBeforeStop.set(index, range[0]);
      await killNode(dir, node);
    },
    async startNode(index) {
      const node = nodes[index];
      if (!node) throw new Error(`no node ${index}`);
      const pid = await pidOf(dir, node);
      if (pid === null || !alive(pid)) await startServer(dir, node, options.tls);
      await waitClusterOk(nodes);
    },
    async nodeIndexOf(key) {
      const node = await liveNode();
      const slot = await withNode(node, (client) => client.cluster('KEYSLOT', key));
      const index = indexServing(await slotsOf(node), slot);
      if (index < 0) throw new Error(`no master serves slot ${slot}`);
      return index;
    },
    async promotedFor(index, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      const former = nodes[index]!;
      const slot = slotServedBeforeStop.get(index);
      if (slot === undefined) throw new Error(`node ${index} served no slot when it was stopped`);
      for (;;) {
        const node = await liveNode().catch(() => null);
        if (node) {
          const info = await clusterInfo(node);
          const owner = indexServing(await slotsOf(node).catch(() => []), slot);
          if (info.includes('cluster_state:ok') && owner >= 0 && nodes[owner] !== former) return owner;
        }
        if (Date.now() > deadline) throw new Error(`no replica of node ${index} (${former.port}) promoted within ${timeoutMs} ms`);
        await pause();
      }
    },
    async replicaOf(index) {
      const master = nodes[index];
      if (!master) throw new Error(`no node ${index}`);
      // Each replica's own word (INFO): another node's CLUSTER NODES may not have heard yet.
      for (const [candidate, node] of nodes.entries()) {
        const info = await withNode(node, (client) => client.info('replication')).catch(() => '');
        if (info.includes('role:slave') && info.includes(`master_port:${master.port}\r`) && info.includes('master_link_status:up')) return candidate;
      }
      throw new Error(`node ${index} has no live replica`);
    },
    async failOverTo(replicaIndex, timeoutMs = 20_000) {
      const replica = nodes[replicaIndex];
      if (!replica) throw new Error(`no node ${replicaIndex}`);
      const deadline = Date.now() + timeoutMs;
      // A master ignores the request of a node it does not know as its replica yet (a cluster
      // just started: its gossip lags the replication link), and the replica drops a manual
      // failover its master did not answer within 5 s: asked again until it is taken.
      let askedAt = 0;
      for (;;) {
        const role = await withNode(replica, (client) => client.info('replication')).catch(() => '');
        if (role.includes('role:slave') && Date.now() - askedAt > MANUAL_FAILOVER_RETRY_MS) {
          await withNode(replica, (client) => client.cluster('FAILOVER'));
          askedAt = Date.now();
        } else if (role.includes('role:master') && (await clusterInfo(replica)).includes('cluster_state:ok')) {
          // And the node nodeIndexOf asks has heard (gossip takes a moment).
          const own = (await slotsOf(replica)).find(([, , master]) => master?.[1] === replica.port);
          const seen = own ? indexServing(await slotsOf(await liveNode()), own[0]) : -1;
          if (seen === replicaIndex) return;
        }
        if (Date.now() > deadline) throw new Error(`node ${replicaIndex} did not take over within ${timeoutMs} ms`);
        await pause();
      }
    },
    async addMaster() {
      const node: RedisClusterNode = { ...nodes[0]!, port: await freePort(), busPort: await freePort() };
      await startServer(dir, node, options.tls);
      const existing = await liveNode();
      await run('redis-cli', ['--cluster', 'add-node', `${node.host}:${node.port}`, `${existing.host}:${existing.port}`, ...cliOptions(options.password, options.tls)]);
      nodes.push(node);
      const live: RedisClusterNode[] = [];
      for (const candidate of nodes) if (await answers(candidate)) live.push(candidate);
      await waitClusterOk(live, nodes.length);
      return nodes.length - 1;
    },
    async moveSlot(slot, toIndex) {
      const target = nodes[toIndex];
      if (!target) throw new Error(`no node ${toIndex}`);
      const sourceIndex = indexServing(await slotsOf(await liveNode()), slot);
      const source = nodes[sourceIndex];
      if (!source) throw new Error(`no master serves slot ${slot}`);
      if (source === target) return;
      const idOf = (node: RedisClusterNode) => withNode(node, (client) => client.cluster('MYID')) as Promise<string>;
      const [sourceId, targetId] = await Promise.all([idOf(source), idOf(target)]);
      await withNode(target, (client) => client.cluster('SETSLOT', slot, 'IMPORTING', sourceId));
      await withNode(source, (client) => client.cluster('SETSLOT', slot, 'MIGRATING', targetId));
      await withNode(source, async (client) => {
        for (;;) {
          const keys = (await client.cluster('GETKEYSINSLOT', slot, 100)) as string[];
          if (keys.length === 0) break;
          await client.call(
            'MIGRATE', target.host, String(target.port), '', '0', '5000',
            ...(options.password ? ['AUTH', options.password] : []),
            'KEYS', ...keys,
          );
        }
      });
      // The target first, then the source, then every other master (as redis-cli does).
      await withNode(target, (client) => client.cluster('SETSLOT', slot, 'NODE', targetId));
      await withNode(source, (client) => client.cluster('SETSLOT', slot, 'NODE', targetId));
      const masters = await slotsOf(target);
      const masterPorts = new Set(masters.map(([, , master]) => master![1]));
      for (const node of nodes) {
        if (node === source || node === target || !masterPorts.has(node.port)) continue;
        await withNode(node, (client) => client.cluster('SETSLOT', slot, 'NODE', targetId)).catch(() => undefined);
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      await Promise.allSettled(nodes.map((node) => killNode(dir, node)));
      await rm(dir, { recursive: true, force: true });
    },
  };
}
