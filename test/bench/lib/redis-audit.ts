import { connect as tcpConnect } from 'node:net';
import { performance } from 'node:perf_hooks';
import { sleep } from './procs.ts';

export interface RedisAudit {
  messages: number;
  seconds: number;
  perMessage: Record<string, number>;
  perSecond: Record<string, number>;
}

/**
 * Runs `drive` (which sends for a while and returns how many sends were acknowledged) with a
 * MONITOR session on the private Redis and classifies every command: PUBLISH to a room channel
 * (a broadcast), PUBLISH to the adapter's request/response channels (fetchSockets,
 * serverSideEmit, socketsJoin…), BullMQ keys, rate-limit keys, other; commands run inside Lua
 * scripts (`[0 lua]`) apart from the ones clients sent.
 */
export async function auditRedis(port: number, prefix: string, drive: () => Promise<number>): Promise<RedisAudit> {
  const socket = tcpConnect(port, '127.0.0.1');
  const counts: Record<string, number> = {};
  let buffer = '';
  let lines = 0;
  const add = (key: string) => (counts[key] = (counts[key] ?? 0) + 1);
  socket.on('data', (chunk) => {
    buffer += chunk.toString('utf8');
    let nl: number;
    while ((nl = buffer.indexOf('\n')) >= 0 && lines < 5_000_000) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      const match = /^\+\d+\.\d+ \[\d+ ([^\]]+)\] "([^"]+)"(?: "([^"]*)")?/.exec(line);
      if (!match) continue;
      lines++;
      const inLua = match[1] === 'lua';
      const command = match[2]!.toLowerCase();
      const first = match[3] ?? '';
      if (command === 'info' || command === 'monitor') continue;
      let kind: string;
      if (command === 'publish' || command === 'spublish') {
        if (first.includes('-request#') || first.includes('-response#')) kind = 'publish:adapter-request/response';
        else if (first.includes('#room:')) kind = 'publish:room-broadcast';
        else kind = 'publish:other';
      } else if (/bull/i.test(line)) kind = `bullmq:${command}`;
      else if (line.includes(`${prefix}:rl:`)) kind = `rate-limit:${command}`;
      else kind = `other:${command}`;
      add(inLua ? `(in Lua) ${kind}` : kind);
    }
  });
  socket.on('error', () => undefined);
  socket.write('MONITOR\r\n');
  await sleep(200);
  const t0 = performance.now();
  const messages = Math.max(1, await drive());
  await sleep(300);
  socket.destroy();
  const seconds = (performance.now() - t0) / 1000;
  const perMessage: Record<string, number> = {};
  const perSecond: Record<string, number> = {};
  for (const [key, value] of Object.entries(counts).sort((a, b) => b[1] - a[1])) {
    perMessage[key] = value / messages;
    perSecond[key] = value / seconds;
  }
  return { messages, seconds, perMessage, perSecond };
}
