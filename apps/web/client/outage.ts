import { ApiError } from './api.ts';

/**
 * Whether a failed background read (the room list's refresh every 20 s) is worth a toast: a
 * server that cannot be reached is said once per outage, not at every refresh; the next read
 * that gets through ends the outage. Other failures are reported each time. No DOM: unit-tested
 * in apps/web/test.
 */
export class OutageNotice {
  private reported = false;

  /** True when `error` should be shown. */
  failed(error: unknown): boolean {
    if (!isUnreachable(error)) return true;
    if (this.reported) return false;
    this.reported = true;
    return true;
  }

  succeeded(): void {
    this.reported = false;
  }
}

/** No answer at all (status 0), or a proxy that found no pod (502, 504). */
function isUnreachable(error: unknown): boolean {
  return error instanceof ApiError && [0, 502, 504].includes(error.status);
}
