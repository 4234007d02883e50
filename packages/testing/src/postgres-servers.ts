import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { chmod, chown, copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import postgres from 'postgres';
import { ensureDatabase, runMigrations } from '@chat/db';
import { sleep } from './clients.ts';
import { freePort } from './ports.ts';
import type { TlsFiles } from './tls-files.ts';

const execFileAsync = promisify(execFile);

const BIN_BASE = '/usr/lib/postgresql';

function newestBinDir(): string | null {
  if (!existsSync(BIN_BASE)) return null;
  const versions = readdirSync(BIN_BASE)
    .filter((version) => existsSync(join(BIN_BASE, version, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] ? join(BIN_BASE, versions[0], 'bin') : null;
}

/** The newest Postgres server binaries Debian installed (`/usr/lib/postgresql/<version>/bin`). */
export function postgresBinDir(): string {
  const bin = newestBinDir();
  if (!bin) throw new Error(`no ${BIN_BASE}/<version>/bin/initdb on this machine`);
  return bin;
}

/** Why the servers of this module cannot run here (no server binaries), or null when they can. */
export function postgresServerUnavailable(): string | null {
  return newestBinDir() ? null : `no ${BIN_BASE}/<version>/bin/initdb (Debian's postgresql package) on this machine`;
}

/**
 * A throw-away Postgres primary and a hot standby streaming from it, on loopback, replication
 * synchronous (every commit waits for the standby's flush), as a failover-managed deployment
 * runs it. `failOver` plays what Patroni or an operator does when the primary's host dies:
 * the primary stops at once (`-m immediate`, no checkpoint) and the standby is promoted. Needs
 * Debian's Postgres server binaries; as root they run as the `postgres` system user (Postgres
 * refuses root), otherwise as the current user.
 */
export interface LocalPostgresPair {
  primaryPort: number;
  standbyPort: number;
  /** A URL of database `name` listing the standby first and the primary second. */
  url(name: string): string;
  /**
   * Creates database `name` on the primary, waits for the standby to have it (a connection to
   * the standby, first in the URL, names it at start-up), migrates it; resolves with its `url`.
   */
  migratedDatabase(name: string): Promise<string>;
  /**
   * Resolves once the standby has replayed everything the primary wrote so far (a database
   * just created, say: a connection to the standby names it at startup).
   */
  caughtUp(): Promise<void>;
  /** Kills the primary and promotes the standby; resolves once the standby takes writes. */
  failOver(): Promise<void>;
  /**
   * Kills the standby: every synchronous commit on the primary then waits for it (an asynchronous
   * one does not, and is visible at once), until `startStandby` brings it back.
   */
  stopStandby(): Promise<void>;
  startStandby(): Promise<void>;
  /** Stops both servers and removes their directory. */
  close(): Promise<void>;
}

const HOST = '127.0.0.1';

/**
 * Runs Debian's Postgres server programs on a throw-away directory: as root through `runuser`
 * as the `postgres` system user (Postgres refuses root), otherwise as the current user.
 */
interface PostgresRunner {
  dir: string;
  run(program: string, args: string[], timeoutMs?: number): Promise<unknown>;
  initdb(data: string): Promise<void>;
  /** Starts the server of `data` on loopback `port`; `settings` are extra `-c name=value`. */
  start(data: string, port: number, settings?: string[]): Promise<void>;
  /** Stops it at once (`-m immediate`, no checkpoint), as a dying host would; never throws. */
  stop(data: string): Promise<void>;
  /** Files the server reads must be its own (a key file 0600). */
  giveToPostgres(path: string, mode: number): Promise<void>;
}

async function createPostgresRunner(prefix: string): Promise<PostgresRunner> {
  const bin = postgresBinDir();
  const dir = await mkdtemp(join(tmpdir(), prefix));
  const root = process.getuid?.() === 0;
  let owner: { uid: number; gid: number } | null = null;
  if (root) {
    const { stdout: uid } = await execFileAsync('id', ['-u', 'postgres']);
    const { stdout: gid } = await execFileAsync('id', ['-g', 'postgres']);
    owner = { uid: Number(uid.trim()), gid: Number(gid.trim()) };
    await chown(dir, owner.uid, owner.gid);
  }
  const run = (program: string, args: string[], timeoutMs = 60_000) =>
    root
      ? execFileAsync('runuser', ['-u', 'postgres', '--', join(bin, program), ...args], { timeout: timeoutMs })
      : execFileAsync(join(bin, program), args, { timeout: timeoutMs });
  return {
    dir,
    run,
    async initdb(data) {
      await run('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--no-instructions'], 120_000);
    },
    async start(data, port, settings = []) {
      const options = [`-p ${port}`, `-c listen_addresses=${HOST}`, `-c unix_socket_directories=${dir}`, '-c max_connections=100', '-c shared_buffers=32MB', ...settings.map((setting) => `-c ${setting}`)];
      await run('pg_ctl', ['-D', data, '-o', options.join(' '), '-l', `${data}.log`, '-w', '-t', '60', 'start'], 90_000);
    },
    async stop(data) {
      await run('pg_ctl', ['-D', data, '-m', 'immediate', '-w', '-t', '20', 'stop'], 30_000).catch(() => undefined);
    },
    async giveToPostgres(path, mode) {
      if (owner) await chown(path, owner.uid, owner.gid);
      await chmod(path, mode);
    },
  };
}

export async function startPostgresPair(): Promise<LocalPostgresPair> {
  const runner = await createPostgresRunner('chat-postgres-pair-');
  const { dir } = runner;
  const primaryPort = await freePort();
  const standbyPort = await freePort();
  const primaryData = join(dir, 'primary');
  const standbyData = join(dir, 'standby');
  const asPostgres = runner.run;
  const close = async () => {
    await Promise.all([runner.stop(primaryData), runner.stop(standbyData)]);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await runner.initdb(primaryData);
    await runner.start(primaryData, primaryPort);
    // -R: standby.signal and primary_conninfo, so it starts as a streaming hot standby.
    await asPostgres('pg_basebackup', ['-h', HOST, '-p', String(primaryPort), '-U', 'postgres', '-D', standbyData, '-R', '-X', 'stream'], 120_000);
    await runner.start(standbyData, standbyPort);
    // Synchronous from here on. Set after the base backup, so the promoted standby does not
    // wait for a standby of its own that will never come.
    const admin = postgres(`postgres://postgres@${HOST}:${primaryPort}/postgres`, { max: 1, onnotice: () => {} });
    try {
      await admin`alter system set synchronous_standby_names = '*'`;
      await admin`select pg_reload_conf()`;
      for (let attempt = 0; ; attempt++) {
        const [row] = await admin<{ sync: boolean }[]>`select exists (select 1 from pg_stat_replication where sync_state = 'sync') as sync`;
        if (row?.sync) break;
        if (attempt >= 100) throw new Error('the standby never became synchronous');
        await sleep(100);
      }
    } finally {
      await admin.end({ timeout: 2 });
    }
  } catch (error) {
    await close();
    throw error;
  }
  const url = (name: string) => `postgres://postgres@${HOST}:${standbyPort},${HOST}:${primaryPort}/${name}`;
  const pair: LocalPostgresPair = {
    primaryPort,
    standbyPort,
    url,
    async migratedDatabase(name) {
      const databaseUrl = url(name);
      await ensureDatabase(databaseUrl);
      await pair.caughtUp();
      await runMigrations(databaseUrl);
      return databaseUrl;
    },
    async caughtUp() {
      const admin = postgres(`postgres://postgres@${HOST}:${primaryPort}/postgres`, { max: 1, onnotice: () => {} });
      try {
        for (let attempt = 0; attempt < 200; attempt++) {
          const [row] = await admin<{ replayed: boolean }[]>`
            select coalesce(bool_and(replay_lsn >= pg_current_wal_lsn()), false) as replayed from pg_stat_replication`;
          if (row?.replayed) return;
          await sleep(50);
        }
        throw new Error('the standby did not catch up within 10 s');
      } finally {
        await admin.end({ timeout: 2 });
      }
    },
    stopStandby: () => runner.stop(standbyData),
    startStandby: () => runner.start(standbyData, standbyPort),
    async failOver() {
      await runner.stop(primaryData);
      await asPostgres('pg_ctl', ['-D', standbyData, '-w', '-t', '60', 'promote'], 90_000);
    },
    close,
  };
  return pair;
}

/**
 * A throw-away Postgres that speaks TLS only on loopback (`hostnossl` refused), with `tls`'s
 * server certificate, and — `clientCertificate` — that asks every client for a certificate of
 * its CA naming the user (`clientcert=verify-full`), as a managed or operator-run Postgres with
 * its own CA does.
 */
export interface LocalPostgresTls {
  port: number;
  /** `postgres://postgres@127.0.0.1:<port>/<name>` with `parameters` as its query. */
  url(name: string, parameters: Record<string, string>): string;
  close(): Promise<void>;
}

export async function startPostgresTls(tls: TlsFiles, options: { clientCertificate?: boolean } = {}): Promise<LocalPostgresTls> {
  const runner = await createPostgresRunner('chat-postgres-tls-');
  const { dir } = runner;
  const data = join(dir, 'data');
  const port = await freePort();
  const close = async () => {
    await runner.stop(data);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await runner.initdb(data);
    // The server reads its key only if it owns it and nobody else can.
    for (const [from, to] of [[tls.certFile, 'server.crt'], [tls.keyFile, 'server.key'], [tls.caFile, 'ca.crt']] as const) {
      await copyFile(from, join(data, to));
      await runner.giveToPostgres(join(data, to), 0o600);
    }
    const hba = join(data, 'pg_hba.conf');
    await writeFile(
      hba,
      [
        'local all all trust',
        `hostssl all all ${HOST}/32 trust${options.clientCertificate ? ' clientcert=verify-full' : ''}`,
        `hostnossl all all ${HOST}/32 reject`,
        '',
      ].join('\n'),
    );
    await runner.giveToPostgres(hba, 0o600);
    await runner.start(data, port, ['ssl=on', 'ssl_cert_file=server.crt', 'ssl_key_file=server.key', 'ssl_ca_file=ca.crt']);
  } catch (error) {
    await close();
    throw error;
  }
  return {
    port,
    url: (name, parameters) => `postgres://postgres@${HOST}:${port}/${name}?${new URLSearchParams(parameters).toString()}`,
    close,
  };
}
