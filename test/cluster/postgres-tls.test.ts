import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureDatabase, runMigrations, singleConnection } from '@chat/db';
import { postgresServerUnavailable, startPostgresTls, type LocalPostgresTls } from '@chat/testing/postgres-servers';
import { makeTlsFiles, type TlsFiles } from '@chat/testing/tls-files';
import { request } from '@chat/testing';
import { chatsAcrossPodsAndExpiresARoom, startAppsOn, type AppsOnServers } from '../support/index.ts';

/**
 * Postgres over TLS with a private CA and client certificates, as an operator-run Postgres
 * (CloudNativePG and the like) or a managed one with its own CA is reached: DATABASE_URL carries
 * libpq's `sslmode=verify-full&sslrootcert=…&sslcert=…&sslkey=…`. The server refuses plain
 * connections and clients without a certificate of its CA naming the user. Migrations, two pods
 * and the worker run on it — chat across pods, history, a room expired by the worker — every
 * backend of theirs encrypted; a URL trusting another CA is refused. A client certificate
 * renewed on disk (as cert-manager renews a mounted Secret) is what the next connections of the
 * running apps present.
 */
const unavailable = postgresServerUnavailable();
if (unavailable) console.warn(`postgres-tls.test.ts skipped: ${unavailable}`);

describe.skipIf(unavailable !== null)('Postgres over TLS with a private CA and client certificates', () => {
  let tls: TlsFiles;
  let postgres: LocalPostgresTls;
  let apps: AppsOnServers;
  let url: string;

  beforeAll(async () => {
    tls = await makeTlsFiles();
    postgres = await startPostgresTls(tls, { clientCertificate: true });
    url = postgres.url('chat_tls', { sslmode: 'verify-full', sslrootcert: tls.caFile, sslcert: tls.clientCertFile, sslkey: tls.clientKeyFile });
    await ensureDatabase(url);
    await runMigrations(url);
    apps = await startAppsOn({ DATABASE_URL: url }, { worker: 'postgres-tls-worker' });
  }, 120_000);

  afterAll(async () => {
    await apps?.stop();
    await postgres?.close();
    await tls?.close();
  }, 60_000);

  it('migrates, serves two pods and the worker, every connection encrypted', { timeout: 60_000 }, async () => {
    await chatsAcrossPodsAndExpiresARoom(apps.cluster, '암호화');

    const admin = singleConnection(url);
    try {
      const backends = await admin<{ ssl: boolean; clientDn: string | null }[]>`
        select s.ssl, s.client_dn as "clientDn" from pg_stat_ssl s join pg_stat_activity a using (pid)
        where a.datname = current_database() and a.backend_type = 'client backend'`;
      // Both pods' pools, the worker's and this one.
      expect(backends.length).toBeGreaterThan(3);
      expect(backends.every((backend) => backend.ssl && backend.clientDn === '/CN=postgres')).toBe(true);
    } finally {
      await admin.end({ timeout: 2 });
    }
  });

  it('presents a client certificate renewed on disk on its next connections, without a restart', { timeout: 90_000 }, async () => {
    const admin = singleConnection(url);
    try {
      /** The serial of the certificate each app backend's client presented (this one's aside). */
      const serials = async () =>
        (
          await admin<{ serial: string }[]>`
            select s.client_serial::text as serial from pg_stat_ssl s join pg_stat_activity a using (pid)
            where a.datname = current_database() and a.backend_type = 'client backend' and a.pid <> pg_backend_pid()`
        ).map((row) => row.serial);
      const before = new Set(await serials());
      expect(before.size).toBe(1);

      await tls.renewClientCertificate();
      // Every connection of the apps cut (as a failover does): their pools connect again.
      await admin`
        select pg_terminate_backend(pid) from pg_stat_activity
        where datname = current_database() and backend_type = 'client backend' and pid <> pg_backend_pid()`;
      for (const pod of apps.cluster.pods) {
        await expect.poll(async () => (await request(pod.url, 'GET', '/readyz')).status, { timeout: 30_000, interval: 250 }).toBe(200);
      }
      await chatsAcrossPodsAndExpiresARoom(apps.cluster, '새 인증서');

      const after = await serials();
      // Both pods' pools and the worker's, connected again.
      expect(after.length).toBeGreaterThan(2);
      expect(after.filter((serial) => before.has(serial))).toEqual([]);
    } finally {
      await admin.end({ timeout: 2 });
    }
  });

  it('refuses a server certificate from another CA, and a client without a certificate', { timeout: 30_000 }, async () => {
    for (const parameters of <Record<string, string>[]>[
      { sslmode: 'verify-full', sslrootcert: tls.otherCaFile, sslcert: tls.clientCertFile, sslkey: tls.clientKeyFile },
      { sslmode: 'verify-full', sslrootcert: tls.caFile },
    ]) {
      const refused = singleConnection(postgres.url('chat_tls', parameters), { connectTimeoutSeconds: 3 });
      try {
        await expect(refused`select 1`).rejects.toThrow();
      } finally {
        await refused.end({ timeout: 1 }).catch(() => undefined);
      }
    }
  });
});
