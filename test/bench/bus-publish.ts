/**
 * `tsx test/bench/bus-publish.ts`: the gateway's CPU per SPUBLISH on one Redis, the bus
 * publisher as built (`createBusPublisher`: socket corked for the rest of the event-loop turn)
 * against ioredis's auto-pipelining and against plain commands, at 1 and at 20 publishes per
 * turn (everyday load, and a busy pod's group commit broadcasting a batch). Variants take turns,
 * two rounds; CPU of this process from process.cpuUsage(). Publishes 300-byte messages to
 * channels nobody subscribes to (no key is written) on REDIS_URL (default 127.0.0.1:6379).
 * Bounded: 20,000 turns of one, 2,000 turns of twenty, per variant and round.
 */
import { Redis } from 'ioredis';
import { createBusPublisher } from '@chat/bus';

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const payload = Buffer.alloc(300, 7);
const variants: Record<string, () => Redis> = {
  'as built (corked per turn)': () => createBusPublisher({ kind: 'standalone', url }) as Redis,
  'auto-pipelined': () => new Redis(url, { enableAutoPipelining: true }),
  plain: () => new Redis(url),
};

async function measure(client: Redis, perTurn: number, turns: number): Promise<number> {
  await client.ping();
  const started = process.cpuUsage();
  let pending: Promise<unknown>[] = [];
  for (let turn = 0; turn < turns; turn++) {
    for (let i = 0; i < perTurn; i++) pending.push(client.spublish(`bench:bus-publish:${i % 60}`, payload));
    await new Promise((resolve) => setImmediate(resolve));
    if (turn % 50 === 49) {
      await Promise.all(pending);
      pending = [];
    }
  }
  await Promise.all(pending);
  const used = process.cpuUsage(started);
  return (used.user + used.system) / (perTurn * turns);
}

const results = new Map<string, number[]>();
for (let round = 0; round < 2; round++) {
  for (const perTurn of [1, 20]) {
    for (const [name, make] of Object.entries(variants)) {
      const client = make();
      const micros = await measure(client, perTurn, perTurn === 1 ? 20_000 : 2_000);
      client.disconnect();
      const key = `${name}|${perTurn}`;
      results.set(key, [...(results.get(key) ?? []), micros]);
    }
  }
}
process.stdout.write('| publisher | publishes per turn | µs of CPU per publish (round 1, round 2) |\n|---|---|---|\n');
for (const [key, values] of results) {
  const [name, perTurn] = key.split('|');
  process.stdout.write(`| ${name} | ${perTurn} | ${values.map((v) => v.toFixed(1)).join(', ')} |\n`);
}
