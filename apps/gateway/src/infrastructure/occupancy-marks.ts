import type { Logger } from 'pino';
import { occupancyMember as keyOf, type OccupancyQueue, type OccupancySubject } from '@chat/presence';

/** While marks wait for Redis: first retry, and the slowest. */
const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 5000;

export interface OccupancyMarks {
  /** The worker is to look at the subject's rooms once the grace has passed. Never rejects. */
  mark(subject: OccupancySubject): void;
  /** Marks not yet taken by Redis. */
  pending(): number;
  /** One last try for what is pending (the pod is stopping), then no more retries. */
  close(): Promise<void>;
}

/**
 * The pod's marks for the occupancy job (room-occupied / room-vacated): a mark Redis does not
 * take is kept, with the due time it had, and sent again until Redis takes it. A mark is the only
 * thing that has the worker look at a room: one dropped during a Redis blip (the commands
 * connection fails fast, no offline queue) left a user's last disconnect unseen, their rooms
 * `occupied` and no room-vacated recorded, until that user's next presence change, possibly never.
 * One entry per subject (the latest mark wins), so a long outage holds at most one per user and
 * room this pod touched.
 */
export function createOccupancyMarks(queue: OccupancyQueue, options: { graceMs: number; logger: Logger }): OccupancyMarks {
  const { graceMs, logger } = options;
  const waiting = new Map<string, { subject: OccupancySubject; due: number }>();
  let timer: NodeJS.Timeout | undefined;
  let delay = RETRY_MIN_MS;
  let closed = false;

  function schedule() {
    if (timer || closed) return;
    timer = setTimeout(() => void retry(), delay);
    timer.unref();
  }

  async function retry(): Promise<void> {
    timer = undefined;
    const marks = [...waiting.values()];
    if (marks.length === 0) return;
    try {
      await queue.markLate(marks);
    } catch (error) {
      delay = Math.min(delay * 2, RETRY_MAX_MS);
      logger.debug({ err: error, marks: marks.length }, 'occupancy marks still not taken');
      schedule();
      return;
    }
    // Only those sent: a mark that failed meanwhile replaced its entry and waits for the next try.
    for (const mark of marks) if (waiting.get(keyOf(mark.subject)) === mark) waiting.delete(keyOf(mark.subject));
    logger.info({ marks: marks.length }, 'occupancy marks taken after Redis failed them');
    delay = RETRY_MIN_MS;
    if (waiting.size > 0) schedule();
  }

  return {
    mark(subject) {
      const entry = { subject, due: Date.now() + graceMs };
      queue.mark(subject, graceMs).then(
        () => {
          // Taken: an older one still waiting would only repeat it (GT keeps this later due anyway).
          const key = keyOf(subject);
          const older = waiting.get(key);
          if (older && older.due <= entry.due) waiting.delete(key);
        },
        (error: unknown) => {
          if (waiting.size === 0) logger.warn({ err: error }, 'occupancy mark failed: kept and retried until Redis takes it');
          waiting.set(keyOf(subject), entry);
          schedule();
        },
      );
    },
    pending: () => waiting.size,
    async close() {
      closed = true;
      if (timer) clearTimeout(timer);
      timer = undefined;
      if (waiting.size > 0) await retry();
      if (waiting.size > 0) logger.warn({ marks: waiting.size }, 'occupancy marks not taken at shutdown');
    },
  };
}
