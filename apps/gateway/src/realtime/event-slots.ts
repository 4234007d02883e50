/**
 * How many of one socket's events run at once. Most events query the database before any
 * other check, so a client that sends events without waiting for their answers would otherwise
 * hold as many queries in flight as it likes, and every other user of the pod would queue
 * behind them (measured: 200 unanswered sends from one socket took another user's send from
 * 2.7 to 27 ms p50). Past `concurrent`, events wait their turn in arrival order; they are all
 * answered, as the protocol says, only later.
 *
 * A client can still write events faster than they are answered, so past `backlog` waiting
 * events the socket's connection stops being read (TCP pushes back on the client) until the
 * backlog is down to a quarter of that.
 *
 * One instance serves every socket of the pod; a socket's own state is its `inFlight` count and,
 * only while some of its events wait, a backlog: an idle socket pays no object of its own.
 */
export interface SlotState {
  /** Events running or waiting. */
  inFlight: number;
  /** Present only while events wait for a slot. */
  backlog?: EventBacklog | undefined;
}

export interface EventBacklog {
  waiting: (() => void)[];
  /** Reading was stopped for this backlog. */
  paused: boolean;
}

export class EventSlots<O extends { data: SlotState }> {
  constructor(
    private readonly concurrent: number,
    private readonly backlog: number,
    private readonly setReading: (owner: O, reading: boolean) => void,
  ) {}

  run<T>(owner: O, task: () => Promise<T>): Promise<T> {
    const state = owner.data;
    const running = state.inFlight - (state.backlog?.waiting.length ?? 0);
    state.inFlight += 1;
    if (running < this.concurrent) return this.start(owner, task);
    const backlog = (state.backlog ??= { waiting: [], paused: false });
    return new Promise<T>((resolve, reject) => {
      backlog.waiting.push(() => void this.start(owner, task).then(resolve, reject));
      // Every time, not once: `ws` resumes the connection by itself after its own backpressure.
      if (backlog.waiting.length >= this.backlog) {
        backlog.paused = true;
        this.setReading(owner, false);
      }
    });
  }

  private async start<T>(owner: O, task: () => Promise<T>): Promise<T> {
    try {
      return await task();
    } finally {
      const state = owner.data;
      state.inFlight -= 1;
      const backlog = state.backlog;
      if (backlog) {
        const next = backlog.waiting.shift();
        if (backlog.paused && backlog.waiting.length <= this.backlog / 4) {
          backlog.paused = false;
          this.setReading(owner, true);
        }
        if (backlog.waiting.length === 0) state.backlog = undefined;
        next?.();
      }
    }
  }
}
