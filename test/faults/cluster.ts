/**
 * The cluster under test: a private Postgres and Redis, N gateway processes (`pods`, 2 to 4;
 * 2 unless `--pods=N`) on fixed ports (clients reconnect to the same addresses after a restart)
 * and the worker. With `bus:
 * 'cluster'` the Socket.IO bus is a private three-master Redis Cluster; the state stays on the
 * private Redis.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { freePort } from '@chat/testing/ports';
import { startRedisCluster, type LocalRedisCluster } from '@chat/testing/redis-cluster';
import {
  spawnGateway,
  spawnWorker,
  startPostgres,
  startRedis,
  waitFor,
  waitHttpOk,
  type GatewayProc,
  type PrivatePostgres,
  type PrivateRedis,
  type Proc,
  type Services,
} from './infra.ts';

export class Cluster {
  /** One slot per pod (`ports.length`); null while that pod is down. */
  gateways: (GatewayProc | null)[];
  worker: Proc | null = null;
  workerStarts = 0;

  private constructor(
    readonly pg: PrivatePostgres,
    readonly redis: PrivateRedis,
    readonly services: Services,
    readonly ports: number[],
    /** The bus's Redis Cluster (`bus: 'cluster'`), else null: the bus is `redis`. */
    readonly busCluster: LocalRedisCluster | null,
  ) {
    this.gateways = ports.map(() => null);
  }

  /** How many gateway processes (pods) this cluster runs. */
  get podCount(): number {
    return this.ports.length;
  }

  /**
   * `state: 'cluster'` puts the state on the bus's cluster too (it needs `bus: 'cluster'`);
   * `pods` is the number of gateway processes (default 2).
   */
  static async start(
    workDir: string,
    options: { bus?: 'standalone' | 'cluster'; state?: 'standalone' | 'cluster'; pods?: number } = {},
  ): Promise<Cluster> {
    const pods = options.pods ?? 2;
    // At least two: scenarios read through pod 1 while pod 0 is down.
    if (!Number.isInteger(pods) || pods < 2) throw new Error(`pods must be an integer of at least 2, not ${pods}`);
    const logDir = join(workDir, 'logs');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(logDir, { recursive: true });
    const [pgStarted, redisStarted, busStarted] = await Promise.allSettled([
      startPostgres(workDir),
      startRedis(logDir),
      options.bus === 'cluster' ? startRedisCluster() : Promise.resolve(null),
    ]);
    if (pgStarted.status === 'rejected' || redisStarted.status === 'rejected' || busStarted.status === 'rejected') {
      if (pgStarted.status === 'fulfilled') await pgStarted.value.close();
      if (redisStarted.status === 'fulfilled') await redisStarted.value.stop();
      if (busStarted.status === 'fulfilled') await busStarted.value?.close();
      const failed = [pgStarted, redisStarted, busStarted].find((started) => started.status === 'rejected') as PromiseRejectedResult;
      throw failed.reason;
    }
    const pg = pgStarted.value;
    const redis = redisStarted.value;
    const busCluster = busStarted.value;
    const services: Services = {
      databaseUrl: pg.url,
      redisUrl: redis.url,
      busClusterNodes: busCluster?.nodesString ?? null,
      stateClusterNodes: options.state === 'cluster' ? (busCluster?.nodesString ?? null) : null,
      redisPrefix: `faults-${randomBytes(3).toString('hex')}`,
      logDir,
    };
    const ports: number[] = [];
    for (let index = 0; index < pods; index++) ports.push(await freePort());
    const cluster = new Cluster(pg, redis, services, ports, busCluster);
    try {
      await Promise.all([...ports.map((_, index) => cluster.startGateway(index)), cluster.startWorker()]);
    } catch (error) {
      await cluster.close();
      throw error;
    }
    return cluster;
  }

  urls = (): string[] => this.ports.map((port) => `http://127.0.0.1:${port}`);

  async startGateway(index: number, env: Record<string, string> = {}): Promise<GatewayProc> {
    const gateway = await spawnGateway(this.services, `gateway-${index}`, this.ports[index]!, env);
    this.gateways[index] = gateway;
    return gateway;
  }

  async killGateway(index: number, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    await this.gateways[index]?.kill(signal);
    this.gateways[index] = null;
  }

  async startWorker(env: Record<string, string> = {}): Promise<Proc> {
    this.workerStarts += 1;
    this.worker = await spawnWorker(this.services, `worker-${this.workerStarts}`, env);
    return this.worker;
  }

  /** Before every scenario: every service up and answering, whatever the last one did. */
  async ensureHealthy(): Promise<void> {
    if (this.busCluster) await Promise.all(this.busCluster.nodes.map((_, index) => this.busCluster!.startNode(index)));
    this.redis.freeze(false);
    if (!this.redis.proc()?.alive()) await this.redis.start();
    try {
      this.pg.freeze(false);
    } catch {
      // not running
    }
    const pgUp = await waitFor(async () => (await this.pg.admin`select 1 as ok`).length === 1, 5000, 200);
    if (!pgUp) {
      await this.pg.start();
      await waitFor(async () => (await this.pg.admin`select 1 as ok`).length === 1, 30_000, 200);
    }
    await Promise.all(
      this.ports.map(async (_, index) => {
        const gateway = this.gateways[index];
        if (!gateway?.alive()) await this.startGateway(index);
        else if (!(await waitHttpOk(`${gateway.url}/readyz`, 20_000, gateway))) {
          await this.killGateway(index);
          await this.startGateway(index);
        }
      }),
    );
    if (!this.worker?.alive()) await this.startWorker();
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.gateways.map((gateway) => gateway?.kill('SIGKILL')), this.worker?.kill('SIGKILL')]);
    await this.redis.stop().catch(() => undefined);
    await this.busCluster?.close().catch(() => undefined);
    await this.pg.close();
  }
}
