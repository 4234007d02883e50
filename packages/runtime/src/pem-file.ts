import { readFileSync } from 'node:fs';

/**
 * A PEM file named in the configuration (a CA, a client certificate or key, mounted from a
 * Kubernetes Secret). Throws naming the path and never the content: a key's text must not
 * reach a log line.
 */
export function readPemFile(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new Error(`cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  if (!text.includes('-----BEGIN ')) throw new Error(`${path} holds no PEM block`);
  return text;
}

/**
 * `base` with each field of `paths` (`ca`, `cert`, `key`) as a getter that reads its PEM file
 * again whenever it is read. ioredis and postgres.js copy their TLS options into each new
 * connection's (Object.assign), so every connection — a reconnect after a failover months
 * after the start — uses the files as they are now: a certificate cert-manager renewed in the
 * mounted Secret is used without a restart, and an expired one read at start is not. Each file
 * is read once here (a missing or broken one fails the start); later a file caught
 * mid-rotation, unreadable or without a PEM block, keeps the last good text.
 */
export function withPemFiles<F extends string, B extends object>(base: B, paths: Readonly<Partial<Record<F, string>>>): B & Partial<Record<F, string>> {
  const options = { ...base };
  for (const [field, path] of Object.entries(paths) as [F, string | undefined][]) {
    if (path === undefined) continue;
    let lastGood = readPemFile(path);
    Object.defineProperty(options, field, {
      enumerable: true,
      get: () => {
        try {
          lastGood = readPemFile(path);
        } catch {
          // Mid-rotation: the next connection reads it again.
        }
        return lastGood;
      },
    });
  }
  return Object.freeze(options) as B & Partial<Record<F, string>>;
}
