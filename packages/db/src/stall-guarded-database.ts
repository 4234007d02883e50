import postgres from 'postgres';
import { withinDeadline } from '@chat/runtime';
import { drizzleOver, type Database } from './client.ts';
import { PoolProgress } from './pool-progress.ts';

type Sql = Database['sql'];

/**
 * A Postgres call (one statement or one transaction) that did not settle in time, Postgres
 * answering nothing it waited behind. Its `code` is one isDatabaseUnavailable knows: the gateway
 * answers it UNAVAILABLE, as any Postgres outage.
 */
export class DatabaseStalledError extends Error {
  readonly code = 'DATABASE_STALLED';
  constructor(stalledAfterMs: number) {
    super(`Postgres did not answer within ${stalledAfterMs} ms: the connections were replaced`);
    this.name = 'DatabaseStalledError';
  }
}

/**
 * A call that did not settle in time because it waited behind the pool's other work, which
 * Postgres was answering (a busy pool, not a silent one): the connections were kept. Unavailable
 * too (isDatabaseUnavailable), as a lock or statement timeout is.
 */
export class DatabaseBusyError extends Error {
  readonly code = 'DATABASE_BUSY';
  constructor(busyForMs: number) {
    super(`Postgres was busy with other calls of this pool for ${busyForMs} ms: this call was not answered in time`);
    this.name = 'DatabaseBusyError';
  }
}

export interface StallGuardOptions {
  /**
   * A call not settled by then is rejected (well past the server's statement_timeout); a stall
   * if Postgres answered nothing it waited behind meanwhile.
   */
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
 * call (a statement, a `begin` transaction, a drizzle query) rejects once `stalledAfterMs` pass
 * unsettled (a worker's job fails; a gateway request answers UNAVAILABLE).
 *
 * The bound runs from the call, so it also counts the call's wait behind the pool's other work:
 * in postgres.js's queue for a free connection, or pipelined on a busy one behind other
 * statements (postgres.js pipelines onto busy connections). On a busy but healthy pool (each
 * statement may take its whole lock and statement timeouts) a call can pass its bound with
 * nothing wrong; and whether it was sent yet cannot tell, since the call ahead of it in line,
 * called earlier, passes its own bound first, after waiting too, while it runs. So the bound
 * elapsing is a stall only if Postgres answered nothing the call waited behind meanwhile
 * (PoolProgress): for a statement handed to a connection, nothing on that connection since the
 * call; for one still queued, a transaction, or anything else, nothing on the pool. A stall
 * rejects with DatabaseStalledError, and the pool it ran on is ended without waiting (its other
 * calls reject too) and a fresh one opened for what comes next, so the next call succeeds as soon
 * as Postgres is reachable again, without a restart. A late stall of a call on a pool already
 * replaced replaces nothing. Otherwise the call rejects with DatabaseBusyError and the pool, with
 * the work in flight on it, is kept; what of the call has not reached Postgres is withdrawn, so a
 * write its caller was told failed does not happen later: a statement still in the queue is taken
 * out of it, and a transaction not begun rolls back at once when its turn comes (one under way
 * rolls back instead of committing). A statement already on a connection cannot be taken back
 * (postgres.js has sent it): it completes or fails on its own, its statement timeout bounding it.
 *
 * Left open: a connection that hangs while the rest of the pool answers is found only by a
 * statement handed to it with nothing answered on it since (a transaction's statements are not
 * told apart per connection): until then the pool is one connection short. The cost per call: the
 * proxy, one timer and a counter.
 *
 * `sql` and `db` are stable: repositories built on them once use whichever pool is current.
 */
export class StallGuardedDatabase implements Database {
  readonly sql: Sql;
  readonly db: Database['db'];
  private pool: Pool;
  /** From a replacement until the episode is over (onAnswering). */
  private stalling = false;
  /** Ends the episode unless a call stalls first. */
  private answeringTimer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(
    private readonly open: () => Database,
    private readonly options: StallGuardOptions,
  ) {
    this.pool = { database: open(), progress: new PoolProgress() };
    this.sql = this.guardSql();
    this.db = drizzleOver(this.sql);
  }

  close(): Promise<void> {
    this.closed = true;
    if (this.answeringTimer) clearTimeout(this.answeringTimer);
    return this.pool.database.close();
  }

  /** Ends the current pool without waiting (its calls reject) and opens a fresh one. */
  private replace(): void {
    const stale = this.pool.database;
    this.pool = { database: this.open(), progress: new PoolProgress() };
    void stale.sql.end({ timeout: 0 }).catch(() => undefined);
    if (this.answeringTimer) clearTimeout(this.answeringTimer);
    this.answeringTimer = null;
    const first = !this.stalling;
    this.stalling = true;
    this.options.onReplaced(first);
  }

  /** `work` (`call`, started on `pool`), within the bound. */
  private bound<T>(work: PromiseLike<T>, pool: Pool, call: Call): Promise<T> {
    const ms = this.options.stalledAfterMs;
    const mark = pool.progress.mark();
    const overdue = (): Error => {
      const stalled = pool !== this.pool || this.closed || !call.waitedOnAnswers(pool.progress, mark);
      call.withdraw();
      if (!stalled) return new DatabaseBusyError(ms);
      if (pool === this.pool && !this.closed) this.replace();
      return new DatabaseStalledError(ms);
    };
    return withinDeadline(Promise.resolve(work), ms, overdue).then(
      (value) => {
        call.answered(pool.progress);
        if (this.stalling && pool === this.pool && !this.answeringTimer) {
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
        // An error Postgres sent (a statement timeout, a constraint) is an answer too.
        if (error instanceof postgres.PostgresError) call.answered(pool.progress);
        throw error;
      },
    );
  }

  /** What a call on `pool` returned: a query or a promise comes back bounded. */
  private guardResult(result: unknown, pool: Pool, call: Call | null): unknown {
    if (isQuery(result)) return this.guardQuery(result, pool);
    if (result instanceof Promise) return this.bound(result, pool, call ?? otherCall);
    return result;
  }

  /**
   * A postgres.js query is a lazy promise (it is sent when first awaited) with builder methods
   * (`.values()`, `.raw()`) that return it: it stays one, with its awaiting bounded. Used as a
   * fragment of another query it is read as it is (the proxy forwards everything else).
   */
  private guardQuery(query: Query, pool: Pool): Query {
    let settled: Promise<unknown> | null = null;
    const run = () => (settled ??= this.bound(new Promise((resolve, reject) => query.then(resolve, reject)), pool, statementCall(query)));
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
      const pool = this.pool;
      const sql = pool.database.sql;
      // drizzle's db.transaction is a `begin` on this stand-in too (drizzleOver).
      const transaction = name === 'begin' ? transactionCall(args, pool.progress) : null;
      const target = name === null ? sql : (Reflect.get(sql, name, sql) as (...a: unknown[]) => unknown);
      return this.guardResult((target as (...a: unknown[]) => unknown).apply(sql, args), pool, transaction);
    };
    const current = () => this.pool.database.sql;
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

/** One pool and what Postgres answered on it. */
interface Pool {
  database: Database;
  progress: PoolProgress;
}

/** What the guard asks of a call whose bound elapsed, and tells it of its answer. */
interface Call {
  /** It only waited behind work Postgres answered since `mark` (a busy pool, not a silent one). */
  waitedOnAnswers(progress: PoolProgress, mark: number): boolean;
  /** Its caller is answered: what of it has not reached Postgres must never run. */
  withdraw(): void;
  /** Postgres answered it in time. */
  answered(progress: PoolProgress): void;
}

/**
 * A postgres.js query. `state` is set when it is handed to a connection (connection.js
 * execute()), sent at once, pipelined behind the statements ahead; before that it waits in the
 * pool's queue, from which `cancel()` removes it (rejecting it with 57014). `active` while it is
 * the statement its connection is on.
 */
type Query = Promise<unknown> & { handle(): unknown; cancel(): unknown; state?: object | null; active?: boolean };

function isQuery(value: unknown): value is Query {
  return value instanceof Promise && typeof (value as { handle?: unknown }).handle === 'function';
}

function statementCall(query: Query): Call {
  return {
    waitedOnAnswers(progress, mark) {
      const connection = query.state;
      if (!connection) return progress.answeredSince(mark);
      // Handed to a connection: it waited there if that connection answered since. A transaction
      // (its connection unknown) answered since may have held the connection it runs on now.
      return progress.answeredOnSince(connection, mark) || (query.active === true && progress.callAnsweredSince(mark));
    },
    withdraw() {
      // Only a query not handed to a connection yet: in the queue, or parked on a connection
      // being opened (patches/postgres@3.4.9.patch keeps that connection usable). One handed
      // over was sent already: postgres.js's cancel of it sends Postgres a cancel request for
      // whatever its connection runs when it arrives.
      if (!query.state) query.cancel();
    },
    answered: (progress) => progress.statementAnswered(query.state ?? null),
  };
}

/**
 * A `begin` (`args`: its options, if any, and the transaction's function). Its function is
 * wrapped: the guard learns when the transaction began on its connection, and once the caller
 * was answered the transaction rolls back (at its first step if it had not begun: nothing
 * written; before its commit if it had).
 */
function transactionCall(args: unknown[], progress: PoolProgress): Call {
  let begunAt: number | null = null;
  let withdrawn = false;
  const withdrawnError = () => new Error('The caller of this transaction was answered already (DatabaseBusyError or DatabaseStalledError): rolled back');
  const at = args.findLastIndex((arg) => typeof arg === 'function');
  const transaction = args[at] as ((sql: unknown) => unknown) | undefined;
  if (transaction) {
    args[at] = (sql: unknown) => {
      if (withdrawn) throw withdrawnError();
      begunAt = progress.mark();
      // As postgres.js does with the function's result: an array of queries is awaited whole.
      const result = transaction(sql);
      return Promise.resolve(Array.isArray(result) ? Promise.all(result) : result).then((value: unknown) => {
        if (withdrawn) throw withdrawnError();
        return value;
      });
    };
  }
  return {
    waitedOnAnswers(answers, mark) {
      if (begunAt === null) return answers.answeredSince(mark);
      // Begun after answered work (it waited for a connection) and Postgres answering since:
      // it has run for less than the bound. Begun at once, it has run the whole bound.
      return begunAt > mark && answers.answeredSince(begunAt);
    },
    withdraw() {
      withdrawn = true;
    },
    answered: (answers) => answers.callAnswered(),
  };
}

/** Any other call returning a promise: Postgres answered it, or it waited on the pool. */
const otherCall: Call = {
  waitedOnAnswers: (progress, mark) => progress.answeredSince(mark),
  withdraw: () => undefined,
  answered: (progress) => progress.callAnswered(),
};
