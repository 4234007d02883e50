import type { Redis } from 'ioredis';

/** The Redis-side figures the scaling bench divides by messages: CPU and bytes written. */
export interface RedisCounters {
  /** used_cpu_user + used_cpu_sys (getrusage of the server process, µs resolution). */
  cpuMicros: number;
  /** total_net_output_bytes: everything Redis wrote to its clients, pub/sub deliveries included. */
  outputBytes: number;
  inputBytes: number;
  /** Connected clients, pub/sub channels and patterns, sharded channels (Redis ≥ 7). */
  clients: number;
  channels: number;
  patterns: number;
  shardChannels: number;
  /** µs spent executing commands (INFO commandstats), the bus's pub/sub commands apart. */
  busCommandMicros: number;
  stateCommandMicros: number;
  /** PUBLISH and SPUBLISH calls (INFO commandstats): the bus messages this server took in. */
  publishCalls: number;
}

/** The adapter's commands; everything else (scripts, keys, INFO aside) is the state's. */
const BUS_COMMANDS = new Set(['publish', 'spublish', 'subscribe', 'psubscribe', 'ssubscribe', 'unsubscribe', 'punsubscribe', 'sunsubscribe', 'pubsub']);

function field(info: string, name: string): number {
  const match = new RegExp(`^${name}:([0-9.]+)`, 'm').exec(info);
  return match ? Number(match[1]) : 0;
}

/**
 * One `INFO` round trip. The reply itself is a few kB of output counted in the next reading:
 * `replyBytes` reports its size so a caller can take it out of a delta.
 */
export async function readRedisCounters(client: Redis): Promise<RedisCounters & { replyBytes: number }> {
  const info = await client.info('everything');
  let busCommandMicros = 0;
  let stateCommandMicros = 0;
  let publishCalls = 0;
  for (const match of info.matchAll(/^cmdstat_([a-z|_-]+):calls=(\d+),usec=(\d+)/gm)) {
    const name = match[1]!.split('|')[0]!;
    if (name === 'info') continue;
    if (name === 'publish' || name === 'spublish') publishCalls += Number(match[2]);
    if (BUS_COMMANDS.has(name)) busCommandMicros += Number(match[3]);
    else stateCommandMicros += Number(match[3]);
  }
  return {
    busCommandMicros,
    stateCommandMicros,
    publishCalls,
    cpuMicros: (field(info, 'used_cpu_user') + field(info, 'used_cpu_sys')) * 1e6,
    outputBytes: field(info, 'total_net_output_bytes'),
    inputBytes: field(info, 'total_net_input_bytes'),
    clients: field(info, 'connected_clients'),
    channels: field(info, 'pubsub_channels'),
    patterns: field(info, 'pubsub_patterns'),
    shardChannels: field(info, 'pubsubshard_channels'),
    // RESP bulk string: $<len>\r\n<body>\r\n
    replyBytes: Buffer.byteLength(info) + String(Buffer.byteLength(info)).length + 5,
  };
}
