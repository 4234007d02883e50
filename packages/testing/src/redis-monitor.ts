import { connect, type Socket } from 'node:net';

export interface RedisMonitor {
  close(): void;
}

/**
 * Every command Redis runs (scripts' own calls included), from `MONITOR` on a raw connection.
 * ioredis's `monitor()` races on a busy server: it enters its monitoring state a microtask
 * after `+OK`, so a command line arriving in the same TCP read is taken for a reply and throws
 * "Command queue state error" as an uncaught exception. Resolves once Redis has answered `+OK`.
 */
export function monitorRedis(url: string, onCommand: (args: string[]) => void): Promise<RedisMonitor> {
  const { hostname, port } = new URL(url);
  const socket: Socket = connect(Number(port || 6379), hostname || '127.0.0.1');
  let buffer = '';
  let started = false;
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.on('connect', () => socket.write('MONITOR\r\n'));
    socket.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('latin1');
      let end: number;
      while ((end = buffer.indexOf('\r\n')) >= 0) {
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        if (!started) {
          if (line !== '+OK') return reject(new Error(`MONITOR answered ${line}`));
          started = true;
          socket.off('error', reject);
          socket.on('error', () => undefined);
          resolve({ close: () => socket.destroy() });
          continue;
        }
        onCommand(parseMonitorLine(line));
      }
    });
  });
}

/** `+1700000000.123456 [0 127.0.0.1:5000] "evalsha" "ab…" "1" "key"` → the quoted arguments. */
function parseMonitorLine(line: string): string[] {
  const args: string[] = [];
  for (const match of line.matchAll(/"((?:[^"\\]|\\.)*)"/g)) {
    const raw = match[1]!.replace(/\\x([0-9a-f]{2})/gi, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
    const text = raw.replace(/\\(["\\nrtab])/g, (_, c: string) => ({ n: '\n', r: '\r', t: '\t', a: '\x07', b: '\b' })[c as 'n'] ?? c);
    args.push(Buffer.from(text, 'latin1').toString('utf8'));
  }
  return args;
}
