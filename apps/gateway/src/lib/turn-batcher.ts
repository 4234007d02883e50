/**
 * One call of `run` for all the calls made in one event-loop iteration (at most `maxBatch` inputs
 * each), started once that iteration's callbacks have all run (setImmediate: no timer, so a lone
 * call waits for nothing). `run` answers with one output per input, in order; if it rejects,
 * every call of that batch rejects with its error. Batches do not wait for one another.
 *
 * For lookups that arrive in bursts, where one query for many costs about what one query for one
 * does: the handshakes of a reconnect storm.
 */
export function createTurnBatcher<I, O>(run: (inputs: I[]) => Promise<O[]>, options: { maxBatch: number }): (input: I) => Promise<O> {
  let pending: { input: I; resolve(output: O): void; reject(error: unknown): void }[] = [];
  let scheduled = false;

  const flush = () => {
    scheduled = false;
    const calls = pending;
    pending = [];
    for (let from = 0; from < calls.length; from += options.maxBatch) {
      const batch = calls.slice(from, from + options.maxBatch);
      // run() may throw synchronously; Promise.resolve().then turns that into a rejection.
      Promise.resolve()
        .then(() => run(batch.map((call) => call.input)))
        .then((outputs) => {
          // Outputs that do not line up with the inputs cannot be trusted for any of them.
          if (outputs.length !== batch.length) throw new Error(`batch of ${batch.length} answered with ${outputs.length} outputs`);
          batch.forEach((call, index) => call.resolve(outputs[index]!));
        })
        .catch((error: unknown) => {
          for (const call of batch) call.reject(error);
        });
    }
  };

  return (input: I) =>
    new Promise<O>((resolve, reject) => {
      pending.push({ input, resolve, reject });
      if (!scheduled) {
        scheduled = true;
        setImmediate(flush);
      }
    });
}
