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
 */
export class EventSlots {
  private running = 0;
  private readonly waiting: (() => void)[] = [];
  private paused = false;

  constructor(
    private readonly concurrent: number,
    private readonly backlog: number,
    private readonly setReading: (reading: boolean) => void,
  ) {}

  run<T>(task: () => Promise<T>): Promise<T> {
    if (this.running < this.concurrent) return this.start(task);
    return new Promise<T>((resolve, reject) => {
      this.waiting.push(() => void this.start(task).then(resolve, reject));
      // Every time, not once: `ws` resumes the connection by itself after its own backpressure.
      if (this.waiting.length >= this.backlog) {
        this.paused = true;
        this.setReading(false);
      }
    });
  }

  private async start<T>(task: () => Promise<T>): Promise<T> {
    this.running += 1;
    try {
      return await task();
    } finally {
      this.running -= 1;
      this.waiting.shift()?.();
      if (this.paused && this.waiting.length <= this.backlog / 4) {
        this.paused = false;
        this.setReading(true);
      }
    }
  }
}
