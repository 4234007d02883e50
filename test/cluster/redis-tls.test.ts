import { copyFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectState, type StateClient } from '@chat/bus';
import { loadWorkerConfig } from '@chat/worker';
import {
  freePort,
  sleep,
  spawnProcess,
  waitForOutput,
  type TestProcess,
} from '@chat/testing';
import { startRedisCluster, type LocalRedisCluster } from '@chat/testing/redis-cluster';
import { startRedisSentinel, type LocalRedisSentinel } from '@chat/testing/redis-sentinel';
import { makeTlsFiles, type TlsFiles } from '@chat/testing/tls-files';
import { chatsAcrossPodsAndExpiresARoom, startAppsOn, type AppsOnServers } from '../support/index.ts';

/**
 * Redis over TLS (`rediss:` REDIS_URL, REDIS_TLS_CA_FILE, REDIS_TLS_CERT_FILE/KEY_FILE), as a
 * managed Redis or one with `tls-port` runs it: servers that speak TLS only, with a private CA,
 * asking every client for a certificate and a password. Two pods and the worker chat across pods
 * and expire a room through BullMQ and the bus — on one Redis, on a Redis Cluster (bus and
 * state, TLS between the nodes too) and through Sentinel (TLS to the sentinels as well) — and a
 * client that trusts another CA, or brings no certificate, is refused. The files are read again
 * by each new connection: a trust or a certificate renewed on disk holds without a restart.
 */

const PASSWORD = 'tls-secret';

let tls: TlsFiles;

beforeAll(async () => {
  tls = await makeTlsFiles();
}, 30_000);

afterAll(async () => {
  await tls?.close();
});

/** The variables an app needs to reach these servers: REDIS_URL's scheme says TLS. */
function tlsEnv(address: string): Record<string, string> {
  return {
    REDIS_URL: `rediss://:${PASSWORD}@${address}`,
    REDIS_TLS_CA_FILE: tls.caFile,
    REDIS_TLS_CERT_FILE: tls.clientCertFile,
    REDIS_TLS_KEY_FILE: tls.clientKeyFile,
  };
}

/** A state connection as the worker would make it from `env`, failing fast. */
function stateClientOf(env: Record<string, string>): StateClient {
  const client = connectState(loadWorkerConfig(env).state, { connectTimeout: 3000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  client.on('error', () => undefined);
  return client;
}

/**
 * The worker's state connection, made from its configuration with `env` and a CA file mounted
 * as a Secret's are (replaced by a rename), reconnecting as the apps' do: while the file holds
 * a CA that signed nothing here, no command gets through (its connections no longer trust the
 * servers); once the right one is back, they do again. Read once at start, the old CA would
 * still be trusted and the commands answered.
 */
async function caReplacedOnDiskHolds(env: Record<string, string>): Promise<void> {
  const caFile = join(tls.dir, `mounted-ca-${Date.now()}.crt`);
  const mountCa = async (source: string) => {
    await copyFile(source, `${caFile}.new`);
    await rename(`${caFile}.new`, caFile);
  };
  await mountCa(tls.caFile);
  const client = connectState(loadWorkerConfig({ ...env, REDIS_TLS_CA_FILE: caFile }).state, { connectTimeout: 3000, maxRetriesPerRequest: 0, retryStrategy: () => 200 });
  client.on('error', () => undefined);
  /** PONG, or why not (a cluster client may hold a command while it reconnects: 'no answer'). */
  const ping = () => Promise.race([client.ping().catch(() => 'refused'), sleep(500).then(() => 'no answer')]);
  try {
    // A cluster client's first command waits for its TLS handshakes and the slot map: on a
    // loaded machine (the whole suite running) that took longer than one 500 ms ping.
    await expect.poll(ping, { timeout: 10_000, interval: 200 }).toBe('PONG');
    await mountCa(tls.otherCaFile);
    client.disconnect(true);
    const answers: string[] = [];
    for (const until = Date.now() + 3000; Date.now() < until; ) {
      answers.push(await ping());
      await sleep(100);
    }
    expect(answers.length).toBeGreaterThan(2);
    expect(answers).not.toContain('PONG');
    await mountCa(tls.caFile);
    await expect.poll(ping, { timeout: 15_000, interval: 200 }).toBe('PONG');
  } finally {
    client.disconnect();
  }
}

describe('one Redis over TLS', () => {
  let redis: TestProcess;
  let env: Record<string, string>;
  let apps: AppsOnServers;

  beforeAll(async () => {
    const port = await freePort();
    redis = spawnProcess('redis-server', [...tls.redisArgs(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--requirepass', PASSWORD]);
    await waitForOutput(redis, 'Ready to accept connections', `redis-server (TLS) on ${port}`);
    env = { ...tlsEnv(`127.0.0.1:${port}`), REDIS_BUS_CLUSTER_NODES: '' };
    apps = await startAppsOn(env, { worker: 'tls-worker' });
  }, 60_000);

  afterAll(async () => {
    await apps?.stop();
    await redis?.kill('SIGKILL');
  }, 40_000);

  it('reads its files again on each connection: a CA replaced on disk holds for the next one', { timeout: 60_000 }, () => caReplacedOnDiskHolds(env));

  it('carries the bus, the state and the worker', { timeout: 60_000 }, async () => {
    await chatsAcrossPodsAndExpiresARoom(apps.cluster);
    // The state really is there: the pods' presence keys, read over TLS.
    const client = stateClientOf(env);
    try {
      expect((await client.keys(`${apps.cluster.redisPrefix}*`)).length).toBeGreaterThan(0);
    } finally {
      client.disconnect();
    }
  });

  it('refuses a server certificate from another CA, and a client without a certificate', { timeout: 30_000 }, async () => {
    const wrongCa = stateClientOf({ ...env, REDIS_TLS_CA_FILE: tls.otherCaFile });
    const noCertificate = stateClientOf({ REDIS_URL: env.REDIS_URL!, REDIS_TLS_CA_FILE: tls.caFile });
    try {
      await expect(wrongCa.ping()).rejects.toThrow();
      await expect(noCertificate.ping()).rejects.toThrow();
    } finally {
      wrongCa.disconnect();
      noCertificate.disconnect();
    }
  });
});

describe('a Redis Cluster over TLS (bus and state)', () => {
  let redisCluster: LocalRedisCluster;
  let apps: AppsOnServers;
  let env: Record<string, string>;

  beforeAll(async () => {
    redisCluster = await startRedisCluster({ password: PASSWORD, tls });
    env = {
      // Nothing listens at REDIS_URL's address: it only carries the password and the scheme.
      ...tlsEnv('127.0.0.1:1'),
      REDIS_BUS_CLUSTER_NODES: redisCluster.nodesString,
      REDIS_STATE_CLUSTER_NODES: redisCluster.nodesString,
    };
    apps = await startAppsOn(env, { worker: 'tls-cluster-worker' });
  }, 90_000);

  afterAll(async () => {
    await apps?.stop();
    await redisCluster?.close();
  }, 40_000);

  it('reads its files again on each connection: a CA replaced on disk holds for the next one', { timeout: 60_000 }, () => caReplacedOnDiskHolds(env));

  it('carries the bus, the state and the worker', { timeout: 60_000 }, async () => {
    await chatsAcrossPodsAndExpiresARoom(apps.cluster);
  });

  it('refuses the cluster when its certificates are from another CA', { timeout: 30_000 }, async () => {
    const wrongCa = stateClientOf({ ...env, REDIS_TLS_CA_FILE: tls.otherCaFile });
    try {
      await expect(wrongCa.ping()).rejects.toThrow();
    } finally {
      wrongCa.disconnect();
    }
  });
});

describe('Sentinel over TLS', () => {
  let sentinel: LocalRedisSentinel;
  let apps: AppsOnServers;
  let env: Record<string, string>;

  beforeAll(async () => {
    sentinel = await startRedisSentinel({ tls });
    env = {
      // The master has no password here; the sentinels and the master both speak TLS only.
      ...tlsEnv('127.0.0.1:1'),
      REDIS_URL: 'rediss://127.0.0.1:1',
      REDIS_SENTINELS: sentinel.sentinels,
      REDIS_SENTINEL_NAME: sentinel.name,
      REDIS_BUS_CLUSTER_NODES: '',
    };
    apps = await startAppsOn(env, { worker: 'tls-sentinel-worker' });
  }, 60_000);

  afterAll(async () => {
    await apps?.stop();
    await sentinel?.close();
  }, 40_000);

  it('reads its files again on each connection: a CA replaced on disk holds for the next one', { timeout: 60_000 }, () => caReplacedOnDiskHolds(env));

  it('carries the bus, the state and the worker through the master the sentinel names', { timeout: 60_000 }, async () => {
    await chatsAcrossPodsAndExpiresARoom(apps.cluster);
  });
});
