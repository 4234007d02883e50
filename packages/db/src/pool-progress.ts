/**
 * Which of one pool's calls Postgres answered, counted: whether it answered anything since a
 * mark tells a call that waited behind answered work (a busy pool) from one left on a silent
 * connection (StallGuardedDatabase). A counter and a WeakMap write per answer: no clock, no timer.
 */
export class PoolProgress {
  private answers = 0;
  /** The count at the last answer on each connection (postgres.js's per-connection `state` object). */
  private readonly lastOnConnection = new WeakMap<object, number>();
  /** The count at the last answer to a call whose connection is not known (a transaction). */
  private lastCall = 0;

  /** Now, to compare with later. */
  mark(): number {
    return this.answers;
  }

  /** A statement answered, on `connection`. */
  statementAnswered(connection: object | null): void {
    this.answers += 1;
    if (connection) this.lastOnConnection.set(connection, this.answers);
  }

  callAnswered(): void {
    this.answers += 1;
    this.lastCall = this.answers;
  }

  /** Any call answered since `mark`. */
  answeredSince(mark: number): boolean {
    return this.answers > mark;
  }

  answeredOnSince(connection: object, mark: number): boolean {
    return (this.lastOnConnection.get(connection) ?? 0) > mark;
  }

  callAnsweredSince(mark: number): boolean {
    return this.lastCall > mark;
  }
}
