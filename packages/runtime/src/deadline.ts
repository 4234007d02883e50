/**
 * `work`, unless `ms` pass first (0: no bound): then it rejects with `timedOut()`. Whatever
 * `work` settles to after that is handed to `onLate` if it is a value and dropped if it is an
 * error, so a late result never becomes an unhandled rejection.
 */
export function withinDeadline<T>(
  work: Promise<T>,
  ms: number,
  timedOut: () => Error,
  onLate: (value: T) => void = () => undefined,
): Promise<T> {
  if (ms <= 0) return work;
  return new Promise((resolve, reject) => {
    let late = false;
    const timer = setTimeout(() => {
      late = true;
      reject(timedOut());
    }, ms);
    work.then(
      (value) => {
        clearTimeout(timer);
        if (late) onLate(value);
        else resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        if (!late) reject(error);
      },
    );
  });
}
