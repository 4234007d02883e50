/**
 * `pnpm bench:storm`: a reconnect storm on ONE gateway. When a pod dies, every client it held
 * reconnects to the others within a second or two; each of those handshakes is a returning user
 * whose token names them, who is a member of a few live rooms. This opens N such sockets at once
 * (the load generator's concurrency = N), closes them, and does it again, for a few rounds, the
 * gateway and a BARE process (test/bench/bare-server.ts: plain Socket.IO, no auth, no database,
 * the machine's floor for a handshake) taking turns. Per round: wall time until every socket is
 * connected, the gateway's CPU per handshake, and what the storm cost Postgres (CPU of the
 * database's backends, transactions committed, WAL written).
 *
 * `--profile`: a CPU profile of the gateway over its last round (self time by area and function).
 *
 *   pnpm bench:storm [--sockets 3000] [--rooms-per-user 2] [--rounds 3] [--bundle dist/gateway.mjs] [--profile]
 *
 * Everything on 127.0.0.1, a private database and Redis, bounded in count and time.
 */
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import postgres from 'postgres';
import { freePort } from '@chat/testing/ports';
import { ADMIN_URL, BenchDatabase } from './lib/bench-database.ts';
import { Inspector, summariseProfile, type CpuProfile } from './lib/cdp.ts';
import { LoadgenClient, type LoadgenCommand } from './lib/loadgen-client.ts';
import { cleanUpOnSignal, sleep, startRedis, startBenchGateway, startNode, stopAll, waitHttpOk, type BenchGateway } from './lib/procs.ts';
import { cpuMicros, fmt, fmtInt, median } from './lib/stats.ts';
import type { LoadgenSpec } from './loadgen.ts';
import { checkArgs } from './lib/args.ts';

const USAGE = `usage: pnpm bench:storm [--sockets 3000] [--rooms-per-user 2] [--rounds 3] [--bundle dist/gateway.mjs] [--profile]
  (see the header of test/bench/handshake-storm.ts)`;
const argv = checkArgs('bench:storm', USAGE, { values: { sockets: 'number', 'rooms-per-user': 'number', rounds: 'number', bundle: 'string' }, flags: ['profile'] });
const option = (name: string, fallback: string) => {
  const at = argv.indexOf(`--${name}`);
  return at >= 0 && argv[at + 1] ? argv[at + 1]! : fallback;
};
const sockets = Math.max(100, Math.min(10_000, Number(option('sockets', '3000'))));
const roomsPerUser = Math.max(0, Math.min(10, Number(option('rooms-per-user', '2'))));
const rounds = Math.max(1, Math.min(5, Number(option('rounds', '3'))));
const bundle = option('bundle', '');
const profile = argv.includes('--profile');
const log = (line: string) => process.stdout.write(`[storm] ${line}\n`);

type Opened = { connected: number; failed: number; ms: number; firstError: string | null };
interface Round {
  ms: number;
  failed: number;
  serverUsPerHandshake: number;
  pgUsPerHandshake: number;
  commitsPerHandshake: number;
  walBytesPerHandshake: number;
}

async function main() {
  const secret = randomBytes(24).toString('hex');
  const db = BenchDatabase.fresh('storm');
  const dbName = db.name;
  const sql = postgres(db.url, { max: 2, onnotice: () => {} });
  const admin = postgres(ADMIN_URL, { max: 1, onnotice: () => {} });
  const loadgen = LoadgenClient.start(secret);
  const lg = <T>(command: LoadgenCommand): Promise<T> => loadgen.request<T>(command, 180_000);
  const cleanup = cleanUpOnSignal(async () => {
    await stopAll();
    await sql.end({ timeout: 2 }).catch(() => undefined);
    await admin.end({ timeout: 2 }).catch(() => undefined);
    await db.drop(log);
  }, log);
  try {
    await db.create();
    const redis = await startRedis();
    const env = { databaseUrl: db.url, redisUrl: redis.url, redisPrefix: 'storm', jwtSecret: secret };
    const gateway = await startBenchGateway('storm-gateway', env, [], bundle ? resolve(bundle) : undefined);
    const barePort = await freePort();
    const bareProc = startNode('bare', 'test/bench/bare-server.ts', { PORT: String(barePort), NODE_ENV: 'production' });
    const bareTarget: BenchGateway = { proc: bareProc, url: `http://127.0.0.1:${barePort}`, inspect: 0 };
    await waitHttpOk(gateway.proc, `${gateway.url}/readyz`, 120_000);
    await waitHttpOk(bareProc, `${bareTarget.url}/healthz`, 60_000);

    // Returning users: stored with the nickname their token carries, each a member of
    // `roomsPerUser` live rooms (ten members a room).
    const users = await sql<{ id: string; nickname: string }[]>`
      insert into users (id, nickname) select gen_random_uuid(), 'storm' || g from generate_series(1, ${sockets + 200}) g
      returning id, nickname`;
    const roomCount = Math.max(1, Math.ceil((users.length * roomsPerUser) / 10));
    if (roomsPerUser > 0) {
      await sql`
        insert into rooms (id, name, created_by, member_count, created_at, expires_at)
        select gen_random_uuid(), 'storm ' || g, ${users[0]!.id}, 0, now(), now() + interval '1 day'
        from generate_series(1, ${roomCount}) g`;
      await sql`
        with r as (select id, row_number() over (order by id) - 1 as k from rooms),
             u as (select id, row_number() over (order by id) - 1 as k from users)
        insert into room_members (room_id, user_id)
        select r.id, u.id from u cross join generate_series(0, ${roomsPerUser - 1}) j
        join r on r.k = (u.k * ${roomsPerUser} + j) % ${roomCount}
        on conflict do nothing`;
      await sql`update rooms set member_count = (select count(*) from room_members m where m.room_id = rooms.id)`;
    }
    await sql`analyze`;
    const specsFor = (target: 'FULL' | 'BARE', from: number, count: number): LoadgenSpec[] =>
      users.slice(from, from + count).map((user, i) =>
        target === 'FULL'
          ? { url: gateway.url, roomId: null, sub: user.id, nickname: user.nickname }
          : { url: bareTarget.url, roomId: null, bareRoom: `r${i % roomCount}` },
      );

    const pgPids = async () =>
      (await admin<{ pid: number }[]>`select pid from pg_stat_activity where datname = ${dbName} or backend_type = 'walwriter'`).map((r) => r.pid);
    const pgCounters = async () => {
      const [row] = await admin<{ commits: string; wal: string }[]>`
        select xact_commit::text as commits, pg_current_wal_insert_lsn()::text as wal from pg_stat_database where datname = ${dbName}`;
      const [hi, lo] = row!.wal.split('/').map((part) => BigInt(`0x${part}`));
      return { commits: Number(row!.commits), wal: Number((hi! << 32n) + lo!) };
    };

    // Warm-up, not counted: compiles the handshake's code and fills the pools.
    for (const target of ['FULL', 'BARE'] as const) {
      await lg({ cmd: 'open', group: 'warm', namespace: '/socket', specs: specsFor(target, sockets, 200), concurrency: 50, deadlineMs: 30_000 });
      await lg({ cmd: 'close', group: 'warm' });
    }
    await sleep(1500);

    const results: Record<'FULL' | 'BARE', Round[]> = { FULL: [], BARE: [] };
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? (['FULL', 'BARE'] as const) : (['BARE', 'FULL'] as const);
      for (const target of order) {
        const server = target === 'FULL' ? gateway.proc.pid : bareProc.pid;
        const pids = target === 'FULL' ? await pgPids() : [];
        const inspector = profile && target === 'FULL' && round === rounds - 1 ? await Inspector.attach(gateway.inspect) : null;
        if (inspector) {
          await inspector.send('Profiler.enable');
          await inspector.send('Profiler.setSamplingInterval', { interval: 200 });
          await inspector.send('Profiler.start');
        }
        const before = { server: cpuMicros(server), pg: pids.reduce((s, pid) => s + cpuMicros(pid), 0), counters: await pgCounters() };
        const opened = await lg<Opened>({ cmd: 'open', group: 'storm', namespace: '/socket', specs: specsFor(target, 0, sockets), concurrency: sockets, deadlineMs: 120_000 });
        // Postgres's backends report their transaction counts at most once a second.
        await sleep(1500);
        const after = { server: cpuMicros(server), pg: pids.reduce((s, pid) => s + cpuMicros(pid), 0), counters: await pgCounters() };
        if (inspector) {
          const { profile: raw } = await inspector.send<{ profile: CpuProfile }>('Profiler.stop');
          inspector.close();
          const summary = summariseProfile(raw as CpuProfile, 30);
          log(`gateway profile, round ${round + 1} (self time):`);
          for (const entry of summary.byArea) log(`  ${entry.area.padEnd(28)} ${fmt(entry.selfPct, 1)}%`);
          for (const entry of summary.top) log(`  ${fmt(entry.selfPct, 1).padStart(5)}% ${entry.name} ${entry.where}`);
        }
        const n = Math.max(1, opened.connected);
        results[target].push({
          ms: opened.ms,
          failed: opened.failed,
          serverUsPerHandshake: (after.server - before.server) / n,
          pgUsPerHandshake: target === 'FULL' ? (after.pg - before.pg) / n : Number.NaN,
          commitsPerHandshake: target === 'FULL' ? (after.counters.commits - before.counters.commits) / n : Number.NaN,
          walBytesPerHandshake: target === 'FULL' ? (after.counters.wal - before.counters.wal) / n : Number.NaN,
        });
        if (opened.failed) log(`${target} round ${round + 1}: ${opened.failed} failed (${opened.firstError})`);
        await lg({ cmd: 'close', group: 'storm' });
        // Let the closes (and, for the gateway, the sockets' leases and presence) settle.
        await sleep(2500);
      }
    }

    const med = (rows: Round[], pick: (r: Round) => number) => median(rows.map(pick));
    log(`${sockets} sockets opened at once, returning users with ${roomsPerUser} live room(s) each; median of ${rounds} rounds (all rounds in brackets)`);
    log('| target | all connected in | handshakes/s | server CPU µs/handshake | Postgres CPU µs/handshake | commits/handshake | WAL bytes/handshake |');
    log('|---|---|---|---|---|---|---|');
    for (const target of ['FULL', 'BARE'] as const) {
      const rows = results[target];
      const all = (pick: (r: Round) => number, digits: number) => `${fmt(med(rows, pick), digits)} [${rows.map((r) => fmt(pick(r), digits)).join(', ')}]`;
      log(
        `| ${target === 'FULL' ? `gateway${bundle ? ' (bundle)' : ''}` : 'BARE'} | ${all((r) => r.ms, 0)} ms | ${fmtInt(sockets / (med(rows, (r) => r.ms) / 1000))} | ${all((r) => r.serverUsPerHandshake, 0)} | ${target === 'FULL' ? all((r) => r.pgUsPerHandshake, 0) : '—'} | ${target === 'FULL' ? all((r) => r.commitsPerHandshake, 2) : '—'} | ${target === 'FULL' ? all((r) => r.walBytesPerHandshake, 0) : '—'} |`,
      );
    }
    await lg({ cmd: 'exit' }).catch(() => undefined);
  } finally {
    await cleanup();
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    void stopAll().then(() => process.exit(1));
  },
);
