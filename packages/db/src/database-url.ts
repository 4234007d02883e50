import { z } from 'zod';

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
  return { hosts: parts.hosts, database, firstHostUrl: first };
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
      parseDatabaseUrl(url);
    } catch (error) {
      context.addIssue({ code: 'custom', message: (error as Error).message });
    }
  });
