import { pino, type DestinationStream, type Logger } from 'pino';

/**
 * What the apps a test started on servers of its own (startAppsOn) logged lately, info and up,
 * kept in memory rather than printed: a failed wait on them appends the lines to its error, so
 * a failure in CI, where only the end of the output is kept, says what the pods and the worker
 * saw (a failover's errors, an overdue job) and not only what the test missed.
 */
const KEPT_LINES = 400;
const lines: string[] = [];

export const appLogDestination: DestinationStream = {
  write(line: string) {
    lines.push(line);
    if (lines.length > KEPT_LINES) lines.splice(0, lines.length - KEPT_LINES);
  },
};

/** A worker's logger writing to appLogDestination (the gateway's own logger takes the destination). */
export function recordedWorkerLogger(pod: string): Logger {
  return pino({ level: 'info', base: { pod } }, appLogDestination);
}

/** Request lines say little about a failure and would push out the lines that do. */
const ROUTINE = new Set(['incoming request', 'request completed']);

/** The last `count` lines worth reading, one per line: seconds before now, pod, level, message, the rest. */
export function recentAppLogs(count = 60): string {
  const now = Date.now();
  return lines
    .map((line) => JSON.parse(line) as { time: number; pod?: string; level: number; msg?: string; [field: string]: unknown })
    .filter((entry) => !ROUTINE.has(entry.msg ?? ''))
    .slice(-count)
    .map(({ time, pod, level, msg, ...rest }) => {
      const { err, ...fields } = rest as { err?: { message?: string } };
      const detail = JSON.stringify(fields);
      return `${((time - now) / 1000).toFixed(1)}s ${pod} ${level} ${msg}${err?.message ? `: ${err.message}` : ''} ${detail === '{}' ? '' : detail}`;
    })
    .join('\n');
}

/** `work`, its failure carrying the apps' recent log lines when there are any. */
export async function withAppLogsOnFailure<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof Error && lines.length > 0) error.message += `\n--- recent app logs (startAppsOn) ---\n${recentAppLogs()}`;
    throw error;
  }
}
