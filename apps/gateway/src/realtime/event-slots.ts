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
  /** Present only while events wait for a slot or an ordered event runs. */
  backlog?: EventBacklog | undefined;
}

interface WaitingEvent {
  start: () => void;
  ordered: boolean;
}

export interface EventBacklog {
  waiting: WaitingEvent[];
  /** Reading was stopped for this backlog. */
  paused: boolean;
  /** An ordered event runs: nothing else of the socket starts until it has finished. */
  orderedRunning: boolean;
}

/**
 * Ordered events (`join-room`, `leave-room`) change what the socket's other events may do, so
 * they run alone, in arrival order: an ordered event starts once every event that arrived before
 * it has finished, and no event that arrived after it starts before it has finished. A client
 * written to the protocol may emit `join-room` and then `send-message` without waiting for an
 * answer; run side by side, the send was refused NOT_A_MEMBER (9 of 10 times), and a `leave-room`
 * followed by a `join-room` could leave the socket in a room its user had left.
 */
export class EventSlots<O extends { data: SlotState }> {
  constructor(
    private readonly concurrent: number,
    private readonly backlog: number,
    private readonly setReading: (owner: O, reading: boolean) => void,
  ) {}

  run<T>(owner: O, task: () => Promise<T>, ordered = false): Promise<T> {
    const state = owner.data;
    const backlog = state.backlog;
    const running = state.inFlight - (backlog?.waiting.length ?? 0);
    state.inFlight += 1;
    if (backlog === undefined || (backlog.waiting.length === 0 && !backlog.orderedRunning)) {
      if (!ordered && running < this.concurrent) return this.start(owner, task, false);
      if (ordered && running === 0) {
        state.backlog = { waiting: [], paused: false, orderedRunning: true };
        return this.start(owner, task, true);
      }
    }
    const queue = (state.backlog ??= { waiting: [], paused: false, orderedRunning: false });
    return new Promise<T>((resolve, reject) => {
      queue.waiting.push({ start: () => void this.start(owner, task, ordered).then(resolve, reject), ordered });
      // Every time, not once: `ws` resumes the connection by itself after its own backpressure.
      if (queue.waiting.length >= this.backlog) {
        queue.paused = true;
        this.setReading(owner, false);
      }
    });
  }

  private async start<T>(owner: O, task: () => Promise<T>, ordered: boolean): Promise<T> {
    try {
      return await task();
    } finally {
      const state = owner.data;
      state.inFlight -= 1;
      const backlog = state.backlog;
      if (backlog) {
        if (ordered) backlog.orderedRunning = false;
        this.startWaiting(state, backlog);
        if (backlog.paused && backlog.waiting.length <= this.backlog / 4) {
          backlog.paused = false;
          this.setReading(owner, true);
        }
        if (backlog.waiting.length === 0 && !backlog.orderedRunning) state.backlog = undefined;
      }
    }
  }

  /** Starts waiting events from the front, in order, as far as the slots and ordered events allow. */
  private startWaiting(state: SlotState, backlog: EventBacklog): void {
    while (!backlog.orderedRunning) {
      const next = backlog.waiting[0];
      if (next === undefined) return;
      const running = state.inFlight - backlog.waiting.length;
      if (next.ordered ? running > 0 : running >= this.concurrent) return;
      backlog.waiting.shift();
      if (next.ordered) backlog.orderedRunning = true;
      next.start();
    }
  }
}
