import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { chown, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import postgres from 'postgres';
import { sleep } from './clients.ts';
import { freePort } from './ports.ts';

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

/** Why `startPostgresPair` cannot run here (no server binaries), or null when it can. */
export function postgresPairUnavailable(): string | null {
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
   * Resolves once the standby has replayed everything the primary wrote so far (a database
   * just created, say: a connection to the standby names it at startup).
   */
  caughtUp(): Promise<void>;
  /** Kills the primary and promotes the standby; resolves once the standby takes writes. */
  failOver(): Promise<void>;
  /** Stops both servers and removes their directory. */
  close(): Promise<void>;
}

const HOST = '127.0.0.1';

export async function startPostgresPair(): Promise<LocalPostgresPair> {
  const bin = postgresBinDir();
  const dir = await mkdtemp(join(tmpdir(), 'chat-postgres-pair-'));
  const root = process.getuid?.() === 0;
  const asPostgres = (program: string, args: string[], timeoutMs = 60_000) =>
    root
      ? execFileAsync('runuser', ['-u', 'postgres', '--', join(bin, program), ...args], { timeout: timeoutMs })
      : execFileAsync(join(bin, program), args, { timeout: timeoutMs });
  const primaryPort = await freePort();
  const standbyPort = await freePort();
  const primaryData = join(dir, 'primary');
  const standbyData = join(dir, 'standby');
  const options = (port: number) =>
    [`-p ${port}`, `-c listen_addresses=${HOST}`, `-c unix_socket_directories=${dir}`, '-c max_connections=100', '-c shared_buffers=32MB'].join(' ');
  const start = (data: string, port: number) =>
    asPostgres('pg_ctl', ['-D', data, '-o', options(port), '-l', `${data}.log`, '-w', '-t', '60', 'start'], 90_000);
  const stop = (data: string) => asPostgres('pg_ctl', ['-D', data, '-m', 'immediate', '-w', '-t', '20', 'stop'], 30_000).catch(() => undefined);
  const close = async () => {
    await Promise.all([stop(primaryData), stop(standbyData)]);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    if (root) {
      const { stdout: uid } = await execFileAsync('id', ['-u', 'postgres']);
      const { stdout: gid } = await execFileAsync('id', ['-g', 'postgres']);
      await chown(dir, Number(uid.trim()), Number(gid.trim()));
    }
    await asPostgres('initdb', ['-D', primaryData, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--no-instructions'], 120_000);
    await start(primaryData, primaryPort);
    // -R: standby.signal and primary_conninfo, so it starts as a streaming hot standby.
    await asPostgres('pg_basebackup', ['-h', HOST, '-p', String(primaryPort), '-U', 'postgres', '-D', standbyData, '-R', '-X', 'stream'], 120_000);
    await start(standbyData, standbyPort);
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
  return {
    primaryPort,
    standbyPort,
    url: (name) => `postgres://postgres@${HOST}:${standbyPort},${HOST}:${primaryPort}/${name}`,
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
    async failOver() {
      await stop(primaryData);
      await asPostgres('pg_ctl', ['-D', standbyData, '-w', '-t', '60', 'promote'], 90_000);
    },
    close,
  };
}
