import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { sleep } from './clients.ts';
import { freePort } from './ports.ts';
import { spawnProcess, waitForOutput, type TestProcess } from './processes.ts';
import type { TlsFiles } from './tls-files.ts';

/**
 * A throw-away Redis with Sentinel on loopback: a master, one replica and one sentinel (quorum
 * 1) watching them, as a failover-managed deployment runs it. No persistence. Needs
 * `redis-server` ≥ 6 on the PATH (it runs the sentinel too, with `--sentinel`).
 */
export interface LocalRedisSentinel {
  /** The master group's name (REDIS_SENTINEL_NAME). */
  name: string;
  /** `host:port` of the sentinel (REDIS_SENTINELS). */
  sentinels: string;
  /** The port the sentinel names as the master now. */
  masterPort(): Promise<number>;
  /** SIGKILLs the current master (a crashed host) and waits until the sentinel has promoted the replica. */
  failOver(timeoutMs?: number): Promise<{ from: number; to: number }>;
  /** Kills every process and removes the directory. */
  close(): Promise<void>;
}

const HOST = '127.0.0.1';
const NAME = 'chat-test';

/** `tls`: the servers and the sentinel speak TLS only, with these certificates. */
export async function startRedisSentinel(options: { tls?: TlsFiles } = {}): Promise<LocalRedisSentinel> {
  const { tls } = options;
  const dir = await mkdtemp(join(tmpdir(), 'chat-redis-sentinel-'));
  const servers = new Map<number, TestProcess>();
  // `--dir`: a replica writes the RDB of its full sync to its working directory, which would
  // otherwise be the workspace (a dump.rdb left in the repository).
  const common = ['--bind', HOST, '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--dir', dir];
  const startServer = async (port: number, replicaOf: number | null) => {
    const listen = tls ? tls.redisArgs(port) : ['--port', String(port)];
    const proc = spawnProcess('redis-server', [...listen, ...common, ...(replicaOf ? ['--replicaof', HOST, String(replicaOf)] : [])]);
    servers.set(port, proc);
    await waitForOutput(proc, 'Ready to accept connections', `redis-server on ${port}`);
  };
  const masterPortAtStart = await freePort();
  const replicaPort = await freePort();
  const sentinelPort = await freePort();
  let sentinel: TestProcess | null = null;
  let admin: Redis | null = null;
  const close = async () => {
    admin?.disconnect();
    await Promise.all([sentinel, ...servers.values()].map((proc) => proc?.kill('SIGKILL')));
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await startServer(masterPortAtStart, null);
    await startServer(replicaPort, masterPortAtStart);
    // The sentinel rewrites its configuration file, so it gets one of its own.
    const config = join(dir, 'sentinel.conf');
    await writeFile(
      config,
      [
        ...(tls ? tls.redisConfigLines(sentinelPort) : [`port ${sentinelPort}`]),
        `bind ${HOST}`,
        `sentinel monitor ${NAME} ${HOST} ${masterPortAtStart} 1`,
        // Fast, for tests: a master silent for 1 s is down, a failover retried after 3 s.
        `sentinel down-after-milliseconds ${NAME} 1000`,
        `sentinel failover-timeout ${NAME} 3000`,
        '',
      ].join('\n'),
    );
    sentinel = spawnProcess('redis-server', [config, '--sentinel']);
    await waitForOutput(sentinel, 'Sentinel ID is', `redis sentinel on ${sentinelPort}`);
    admin = new Redis(sentinelPort, HOST, tls ? { tls: await tls.clientOptions() } : {});
    const sentinelAdmin = admin;
    const masterPort = async () => {
      const [, port] = (await sentinelAdmin.call('SENTINEL', 'get-master-addr-by-name', NAME)) as [string, string];
      return Number(port);
    };
    // A failover needs the sentinel to know the replica (it learns it from the master's INFO).
    const deadline = Date.now() + 15_000;
    for (;;) {
      const replicas = (await sentinelAdmin.call('SENTINEL', 'replicas', NAME)) as string[][];
      const known = replicas.some((fields) => fields.join(' ').includes(`port ${replicaPort}`) && !fields.join(' ').includes('disconnected'));
      if (known) break;
      if (Date.now() > deadline) throw new Error(`the sentinel did not learn of the replica:\n${sentinel.output()}`);
      await sleep(100);
    }
    return {
      name: NAME,
      sentinels: `${HOST}:${sentinelPort}`,
      masterPort,
      async failOver(timeoutMs = 20_000) {
        const from = await masterPort();
        await servers.get(from)?.kill('SIGKILL');
        servers.delete(from);
        const until = Date.now() + timeoutMs;
        for (;;) {
          const to = await masterPort();
          if (to !== from) return { from, to };
          if (Date.now() > until) throw new Error(`no failover within ${timeoutMs} ms:\n${sentinel?.output() ?? ''}`);
          await sleep(100);
        }
      },
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}
