import { drizzleOver, type Database } from './client.ts';
import { withinDeadline } from '@chat/runtime';

type Sql = Database['sql'];

/**
 * A Postgres call (one statement or one transaction) that did not settle in time. Its `code` is
 * one isDatabaseUnavailable knows: the gateway answers it UNAVAILABLE, as any Postgres outage.
 */
export class DatabaseStalledError extends Error {
  readonly code = 'DATABASE_STALLED';
  constructor(stalledAfterMs: number) {
    super(`Postgres did not answer within ${stalledAfterMs} ms: the connections were replaced`);
    this.name = 'DatabaseStalledError';
  }
}

export interface StallGuardOptions {
  /** A call not settled by then stalled (well past the server's statement_timeout). */
  stalledAfterMs: number;
  /** The connections were replaced; `firstOfEpisode` unless an episode was under way (below). */
  onReplaced(firstOfEpisode: boolean): void;
  /**
   * The episode is over: a call succeeded after the last replacement, and no call stalled in
   * the `stalledAfterMs` since. Any call started before that success has settled or stalled by
   * then (one stuck on a connection the new pool opened while Postgres was still away, say).
   */
  onAnswering?(): void;
}

/**
 * A Postgres pool with every call bounded, replaced by a fresh one when a call stalls: the
 * worker's pool and the gateway's general pool (REST reads and writes, joins and leaves, the
 * handshake's session read, the server API). The gateway's group-commit writer has its own
 * counterpart (apps/gateway/src/infrastructure/writer-connection.ts and its batch deadline).
 *
 * statement_timeout and lock_timeout are enforced by the server, and postgres.js has no query
 * timeout of its own: when Postgres goes away without a reset (a network partition, a node that
 * vanished, a failover that moved the Service while the old connections hang: packets dropped,
 * no RST) a query waits until the TCP stack gives up, many minutes, holding its connection, so
 * the whole pool ends up waiting and the process stays useless after Postgres is back. Here each
 * call (a statement, a `begin` transaction, a drizzle query) rejects with DatabaseStalledError
 * once `stalledAfterMs` pass unsettled (a worker's job fails; a gateway request answers
 * UNAVAILABLE); and the pool it ran on is ended without waiting (its other calls reject too) and
 * a fresh one opened for what comes next, so the next call succeeds as soon as Postgres is
 * reachable again, without a restart. A late stall of a call on a pool already replaced
 * replaces nothing. The cost per call: the proxy and one timer.
 *
 * `sql` and `db` are stable: repositories built on them once use whichever pool is current.
 */
export class StallGuardedDatabase implements Database {
  readonly sql: Sql;
  readonly db: Database['db'];
  private current: Database;
  private generation = 0;
  /** From a replacement until the episode is over (onAnswering). */
  private stalling = false;
  /** Ends the episode unless a call stalls first. */
  private answeringTimer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(
    private readonly open: () => Database,
    private readonly options: StallGuardOptions,
  ) {
    this.current = open();
    this.sql = this.guardSql();
    this.db = drizzleOver(this.sql);
  }

  close(): Promise<void> {
    this.closed = true;
    if (this.answeringTimer) clearTimeout(this.answeringTimer);
    return this.current.close();
  }

  /** Ends the current pool without waiting (its calls reject) and opens a fresh one. */
  private replace(): void {
    const stale = this.current;
    this.current = this.open();
    this.generation += 1;
    void stale.sql.end({ timeout: 0 }).catch(() => undefined);
    if (this.answeringTimer) clearTimeout(this.answeringTimer);
    this.answeringTimer = null;
    const first = !this.stalling;
    this.stalling = true;
    this.options.onReplaced(first);
  }

  /** `work` (a call started on the pool of `generation`), within the bound. */
  private bound<T>(work: PromiseLike<T>, generation: number): Promise<T> {
    const ms = this.options.stalledAfterMs;
    return withinDeadline(Promise.resolve(work), ms, () => new DatabaseStalledError(ms)).then(
      (value) => {
        if (this.stalling && generation === this.generation && !this.answeringTimer) {
          this.answeringTimer = setTimeout(() => {
            this.answeringTimer = null;
            this.stalling = false;
            this.options.onAnswering?.();
          }, ms);
          this.answeringTimer.unref();
        }
        return value;
      },
      (error: unknown) => {
        if (error instanceof DatabaseStalledError && generation === this.generation && !this.closed) this.replace();
        throw error;
      },
    );
  }

  /** What a call on the current pool returned: a query or a promise comes back bounded. */
  private guardResult(result: unknown, generation: number): unknown {
    if (isQuery(result)) return this.guardQuery(result, generation);
    if (result instanceof Promise) return this.bound(result, generation);
    return result;
  }

  /**
   * A postgres.js query is a lazy promise (it is sent when first awaited) with builder methods
   * (`.values()`, `.raw()`) that return it: it stays one, with its awaiting bounded. Used as a
   * fragment of another query it is read as it is (the proxy forwards everything else).
   */
  private guardQuery(query: Query, generation: number): Query {
    let settled: Promise<unknown> | null = null;
    const run = () => (settled ??= this.bound(new Promise((resolve, reject) => query.then(resolve, reject)), generation));
    const guarded: Query = new Proxy(query, {
      get(target, property) {
        if (property === 'then') return (onValue?: (value: unknown) => unknown, onError?: (error: unknown) => unknown) => run().then(onValue, onError);
        if (property === 'catch') return (onError?: (error: unknown) => unknown) => run().catch(onError);
        if (property === 'finally') return (onFinally?: () => void) => run().finally(onFinally);
        const value: unknown = Reflect.get(target, property, target);
        if (typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          const result: unknown = (value as (...a: unknown[]) => unknown).apply(target, args);
          return result === target ? guarded : result;
        };
      },
    });
    return guarded;
  }

  /** A stand-in for the pool's `sql` that calls the current pool, its results guarded. */
  private guardSql(): Sql {
    const call = (name: PropertyKey | null, args: unknown[]): unknown => {
      const sql = this.current.sql;
      const generation = this.generation;
      const target = name === null ? sql : (Reflect.get(sql, name, sql) as (...a: unknown[]) => unknown);
      return this.guardResult((target as (...a: unknown[]) => unknown).apply(sql, args), generation);
    };
    const current = () => this.current.sql;
    // An arrow function as the target: callable, and without a `prototype` to keep invariant.
    return new Proxy((() => undefined) as unknown as Sql, {
      apply: (_target, _this, args: unknown[]) => call(null, args),
      get(_target, property) {
        const value: unknown = Reflect.get(current(), property, current());
        // Helpers (`sql.json`, `sql.array`) and calls (`begin`, `unsafe`) alike; values as they are.
        return typeof value === 'function' ? (...args: unknown[]) => call(property, args) : value;
      },
    });
  }
}

type Query = Promise<unknown> & { handle(): unknown };

function isQuery(value: unknown): value is Query {
  return value instanceof Promise && typeof (value as { handle?: unknown }).handle === 'function';
}
