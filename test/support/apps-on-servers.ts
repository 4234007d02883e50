import { closeAllSockets, createTestDatabase, sleep } from '@chat/testing';
import { createLogger } from '@chat/gateway';
import { appLogDestination, recordedWorkerLogger } from './app-logs.ts';
import { startCluster, type TestCluster } from './cluster.ts';
import { closeAllWorkers, startTestWorker } from './worker.ts';

export interface AppsOnServers {
  cluster: TestCluster;
  /** Sockets, then the apps (bounded, so a test's servers go even if an app hangs), then the database. */
  stop(): Promise<void>;
}

/**
 * Gateway pods (two by default) and the worker on servers a test started itself — a Sentinel
 * group, a Redis Cluster, TLS servers, a Postgres pair — that `env` names. Unless `env` names a
 * DATABASE_URL (a Postgres of the test's own), they get a fresh database of their own: a worker
 * sweeps every room of its database, so it must not share rooms with other files
 * (createTestDatabase). The worker takes `env` and `workerEnv`, its `POD_NAME` `options.worker`.
 */
export async function startAppsOn(
  env: Record<string, string>,
  options: { worker: string; workerEnv?: Record<string, string>; pods?: number },
): Promise<AppsOnServers> {
  const database = env.DATABASE_URL ? null : await createTestDatabase();
  const appsEnv = database ? { ...env, DATABASE_URL: database.url } : env;
  let cluster: TestCluster | undefined;
  const stop = async () => {
    closeAllSockets();
    await Promise.race([Promise.allSettled([closeAllWorkers(), cluster?.close()]), sleep(15_000)]);
    await database?.drop();
  };
  try {
    // Logged in memory for a failure to print (app-logs.ts), unless TEST_LOG_LEVEL asks for stdout.
    const recorded = process.env.TEST_LOG_LEVEL === undefined;
    const gatewayLogger = (pod: string) => createLogger({ level: 'info', pod, destination: appLogDestination });
    cluster = await startCluster(options.pods ?? 2, appsEnv, recorded ? { logger: gatewayLogger } : {});
    await startTestWorker(cluster, { ...appsEnv, ...options.workerEnv, POD_NAME: options.worker }, recorded ? { logger: recordedWorkerLogger } : {});
    return { cluster, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
