import type { ConnectionOptions } from 'node:tls';
import { z } from 'zod';
import { withPemFiles } from '@chat/runtime';

/**
 * DATABASE_URL as libpq and postgres.js read it, several hosts included:
 * `postgres://user:password@host[:port][,host[:port]…]/database?parameters`. A primary and its
 * standbys listed in one URL let every connection find the primary by itself after a failover,
 * without a proxy or a changed Secret (README, "Postgres failover"). The WHATWG URL parser
 * refuses a host list, so each host is checked as a URL of its own.
 */

const FORM = /^(postgres(?:ql)?):\/\/([^/?#]*)(.*)$/;

/** What postgres.js is asked for when several hosts are listed and the URL names no target. */
const DEFAULT_TARGET = 'primary';

/** The `target_session_attrs` values postgres.js 3.4.9 knows (not libpq's `any`: it throws on it). */
const TARGETS = ['read-write', 'read-only', 'primary', 'standby', 'prefer-standby'] as const;

/** libpq's `sslmode` values; postgres.js reads the parameter itself when no file is named. */
const SSL_MODES = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'] as const;

/**
 * libpq's certificate parameters, naming PEM files (a private CA such as an operator's, a client
 * certificate for `clientcert=verify-full`). postgres.js 3.4.9 does not read them: it would send
 * them to the server as settings, which refuses the connection. So they are read here.
 */
const TLS_FILE_PARAMETERS = { sslrootcert: 'ca', sslcert: 'cert', sslkey: 'key' } as const;

export interface DatabaseUrl {
  /** `host` or `host:port`, in the URL's order. */
  hosts: string[];
  database: string;
  /** The same URL with the first host only: what `new URL` and single-host tools accept. */
  firstHostUrl: URL;
}

function split(url: string): { scheme: string; user: string; hosts: string[]; rest: string } | null {
  const match = FORM.exec(url);
  if (!match) return null;
  const [, scheme, authority, rest] = match as unknown as [string, string, string, string];
  const at = authority.lastIndexOf('@');
  const user = at >= 0 ? authority.slice(0, at + 1) : '';
  const hosts = authority.slice(at + 1).split(',');
  return { scheme, user, hosts, rest };
}

/** Throws with what is wrong when `url` is not a Postgres URL of one or more hosts. */
export function parseDatabaseUrl(url: string): DatabaseUrl {
  const parts = split(url);
  if (!parts) throw new Error('must be a postgres:// or postgresql:// URL');
  const urls = parts.hosts.map((host) => {
    // IPv6 literals would need postgres.js's host list to split on something else than ':'.
    if (!/^[A-Za-z0-9._-]+(:\d{1,5})?$/.test(host)) throw new Error(`"${host}" is not a host or host:port`);
    return new URL(`${parts.scheme}://${parts.user}${host}${parts.rest}`);
  });
  const first = urls[0]!;
  const database = decodeURIComponent(first.pathname.slice(1));
  if (!database) throw new Error('must name a database (…/<database>)');
  const target = first.searchParams.get('target_session_attrs');
  if (target !== null && !(TARGETS as readonly string[]).includes(target)) {
    throw new Error(`target_session_attrs must be one of ${TARGETS.join(', ')}`);
  }
  const sslmode = first.searchParams.get('sslmode');
  if (sslmode !== null && !(SSL_MODES as readonly string[]).includes(sslmode)) {
    throw new Error(`sslmode must be one of ${SSL_MODES.join(', ')}`);
  }
  const files = tlsFilesOf(first.searchParams);
  if (Object.keys(files).length > 0 && !['require', 'verify-ca', 'verify-full'].includes(sslmode ?? '')) {
    throw new Error('sslrootcert, sslcert and sslkey need sslmode=require, verify-ca or verify-full');
  }
  if ((files.cert === undefined) !== (files.key === undefined)) throw new Error('sslcert and sslkey go together');
  return { hosts: parts.hosts, database, firstHostUrl: first };
}

/** The certificate files the URL names (`sslrootcert=system` is not a file: postgres.js's). */
function tlsFilesOf(parameters: URLSearchParams): { ca?: string; cert?: string; key?: string } {
  const files: { ca?: string; cert?: string; key?: string } = {};
  for (const [parameter, field] of Object.entries(TLS_FILE_PARAMETERS)) {
    const path = parameters.get(parameter);
    if (path && !(parameter === 'sslrootcert' && path === 'system')) files[field] = path;
  }
  return files;
}

/**
 * What postgres.js is given for `url`: the URL itself, unless it names certificate files
 * (sslrootcert, sslcert, sslkey); then the URL without them and `sslmode`, and the TLS options
 * they mean, as libpq reads them — `verify-full` checks the chain and the server's name,
 * `verify-ca` the chain only, and `require` with a root certificate is `verify-ca`. The files
 * are read here, and again by each new connection (withPemFiles: a renewed certificate is used
 * without a restart); throws naming a file it cannot read, never its content.
 */
export function postgresConnectionOf(url: string): { url: string; ssl?: ConnectionOptions } {
  const { firstHostUrl } = parseDatabaseUrl(url);
  const files = tlsFilesOf(firstHostUrl.searchParams);
  if (Object.keys(files).length === 0) return { url };
  const sslmode = firstHostUrl.searchParams.get('sslmode');
  const ssl: ConnectionOptions = { rejectUnauthorized: sslmode !== 'require' || files.ca !== undefined };
  if (sslmode !== 'verify-full') ssl.checkServerIdentity = () => undefined;
  return { url: withoutParameters(url, ['sslmode', ...Object.keys(TLS_FILE_PARAMETERS)]), ssl: withPemFiles(ssl, files) };
}

function withoutParameters(url: string, names: readonly string[]): string {
  const parts = split(url)!;
  const query = parts.rest.indexOf('?');
  if (query < 0) return url;
  const parameters = new URLSearchParams(parts.rest.slice(query + 1));
  for (const name of names) parameters.delete(name);
  const kept = parameters.toString();
  return `${parts.scheme}://${parts.user}${parts.hosts.join(',')}${parts.rest.slice(0, query)}${kept ? `?${kept}` : ''}`;
}

export function isDatabaseUrl(url: string): boolean {
  try {
    parseDatabaseUrl(url);
    return true;
  } catch {
    return false;
  }
}

/** The same server list and credentials, naming database `name` (maintenance work, tests). */
export function withDatabaseName(url: string, name: string): string {
  const parts = split(url);
  if (!parts) throw new Error('not a postgres:// URL');
  const query = parts.rest.indexOf('?');
  return `${parts.scheme}://${parts.user}${parts.hosts.join(',')}/${encodeURIComponent(name)}${query >= 0 ? parts.rest.slice(query) : ''}`;
}

/** For messages: the password replaced by `***`. */
export function redactDatabaseUrl(url: string): string {
  const parts = split(url);
  if (!parts) return '(not a postgres:// URL)';
  const user = parts.user.replace(/:[^@]*@$/, ':***@');
  return `${parts.scheme}://${user}${parts.hosts.join(',')}${parts.rest}`;
}

/**
 * The `target_session_attrs` to hand postgres.js, or undefined for its default (any server).
 * With several hosts and none named: `primary`, since every pod and the worker write. And
 * `read-write` becomes `primary`: postgres.js 3.4.9 tests read-write by
 * `default_transaction_read_only`, which a hot standby reports `off`, so it would settle on a
 * standby and every write would fail there; `primary` tests `in_hot_standby` (Postgres 14+),
 * which is what read-write means in a streaming-replication setup.
 */
export function sessionTargetOf(url: string): (typeof TARGETS)[number] | undefined {
  const { hosts, firstHostUrl } = parseDatabaseUrl(url);
  const named = firstHostUrl.searchParams.get('target_session_attrs') as (typeof TARGETS)[number] | null;
  if (named === 'read-write') return 'primary';
  if (named) return named;
  return hosts.length > 1 ? DEFAULT_TARGET : undefined;
}

/** DATABASE_URL in the apps' configuration: one or more hosts, refused with the reason. */
export const databaseUrlSchema = z
  .string()
  .default('postgres://postgres@127.0.0.1:5432/chat')
  .superRefine((url, context) => {
    try {
      // Its certificate files too: one that cannot be read stops the process at start.
      postgresConnectionOf(url);
    } catch (error) {
      context.addIssue({ code: 'custom', message: (error as Error).message });
    }
  });
