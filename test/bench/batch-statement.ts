/**
 * `pnpm bench:batch`: the group commit's Postgres CPU alone, without gateways or clients. Runs
 * `insertBatch` as the gateway does (its own connection, asynchronous commit, the durability
 * barrier behind each batch) in a bounded loop for a few batch sizes and reads the backend's
 * CPU from /proc/<pid>/schedstat (nanoseconds on CPU; the server must be on this host) around
 * each step: µs per batch and per message. The walwriter's CPU is printed beside it, but it is
 * shared with every database of the server (noisy when other work runs), and so is this
 * process's own main thread ("client"): what a gateway spends per batch building, sending and
 * reading it with postgres.js, one batch in flight, wake-ups included.
 *
 * `--variant NAME=SQL` (repeatable) adds a database of its own that gets SQL after the
 * migrations (`{db}` stands for its name, e.g. `alter database {db} set plan_cache_mode =
 * force_generic_plan`); every variant runs each step in turn, rounds interleaved, so their
 * figures are side by side. `--forms` picks the messages, each form a run of its own beside the
 * others: `plain` (no clientMessageId, the default), `ids` (every message a new clientMessageId,
 * as the web page sends: the plain statement after one index probe per message) and `repeat`
 * (ids, and the batch's last message repeats its first one's: the dedupe statement, which every
 * batch with an id took before the plain statement learned to probe for retries), and `bots`
 * (as `plain`, but sent as the server API's bots are: no membership check). Every other form's
 * messages are users' sends from members of the room, which the statement checks (one probe of
 * room_members' key per room and sender).
 * PROBE_NO_BARRIER=1 runs the batches without the durability barrier (not durable), to see what
 * the barrier costs; `--one-query` commits each batch synchronously inside its statement
 * instead, as the writer does for rooms that are not hot.
 *
 *   pnpm bench:batch [--sizes 1,4,24] [--batches 2000] [--rounds 3] [--rooms 60] [--one-query]
 *                    [--forms plain,ids,repeat,bots] [--variant NAME=SQL]…
 *
 * Everything on 127.0.0.1, private databases dropped at the end, bounded in count and time.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import postgres from 'postgres';
import { createDatabase, createMessagesRepository, type Database, type NewMessage } from '@chat/db';
import { ADMIN_URL, BenchDatabase } from './lib/bench-database.ts';
import { cleanUpOnSignal } from './lib/procs.ts';
import { checkArgs } from './lib/args.ts';

const USAGE = `usage: pnpm bench:batch [--sizes 1,4,24] [--batches 2000] [--rounds 3] [--rooms 60] [--one-query]
                        [--forms plain,ids,repeat,bots] [--variant NAME=SQL]…
  (see the header of test/bench/batch-statement.ts)`;
const argv = checkArgs('bench:batch', USAGE, { values: { sizes: 'numbers', batches: 'number', rounds: 'number', rooms: 'number', forms: 'string', variant: 'string' }, flags: ['one-query'] });
const option = (name: string, fallback: string) => {
  const at = argv.indexOf(`--${name}`);
  return at >= 0 && argv[at + 1] ? argv[at + 1]! : fallback;
};
const sizes = option('sizes', '1,4,24').split(',').map(Number).filter((n) => n >= 1 && n <= 500).slice(0, 8);
const batches = Math.max(10, Math.min(20_000, Number(option('batches', '2000'))));
const rounds = Math.max(1, Math.min(10, Number(option('rounds', '3'))));
const roomCount = Math.max(1, Math.min(2000, Number(option('rooms', '60'))));
const FORMS = ['plain', 'ids', 'repeat', 'bots'] as const;
type Form = (typeof FORMS)[number];
const forms = option('forms', 'plain')
  .split(',')
  .map((form): Form => {
    if (!(FORMS as readonly string[]).includes(form)) throw new Error(`--forms: ${form} is not one of ${FORMS.join(', ')}`);
    return form as Form;
  });
/** A step stops after this long even if it has not run all its batches. */
const stepLimitMs = 20_000;
const variants: { name: string; sql: string }[] = [{ name: 'as shipped', sql: '' }];
argv.forEach((arg, at) => {
  if (arg !== '--variant' || !argv[at + 1]) return;
  const text = argv[at + 1]!;
  const eq = text.indexOf('=');
  variants.push({ name: text.slice(0, eq), sql: text.slice(eq + 1) });
});

/** Nanoseconds this process (a Postgres backend) has spent on a CPU. */
const onCpuNs = (pid: number) => Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0]);

interface Setup {
  name: string;
  database: Database;
  writer: Database;
  backendPid: number;
  insertBatch: ReturnType<typeof createMessagesRepository>['insertBatch'];
  rooms: string[];
  users: string[];
}

/** A variant's database (`db`, created here), its connections and its rooms. */
async function setUp(name: string, extraSql: string, db: BenchDatabase): Promise<Setup> {
  await db.create();
  const database = createDatabase({ url: db.url, maxConnections: 2 });
  if (extraSql) await database.sql.unsafe(extraSql.replaceAll('{db}', db.name));
  // Opened after the variant's SQL, so database-level settings apply to it.
  const writer = createDatabase({ url: db.url, maxConnections: 1, synchronousCommit: 'off' });
  const [backend] = await writer.sql<{ pid: number }[]>`select pg_backend_pid() as pid`;
  if (!backend) throw new Error('no backend pid');
  const owner = randomUUID();
  const users = Array.from({ length: roomCount * 10 }, () => randomUUID());
  const rooms = Array.from({ length: roomCount }, () => randomUUID());
  await database.sql`insert into users (id, nickname) select id, 'batch' from json_to_recordset(${JSON.stringify([owner, ...users].map((id) => ({ id })))}::text::json) as x(id uuid)`;
  await database.sql`insert into rooms (id, name, created_by, member_count, created_at, expires_at)
    select id, 'batch', ${owner}, 10, now(), now() + interval '1 day'
    from json_to_recordset(${JSON.stringify(rooms.map((id) => ({ id })))}::text::json) as x(id uuid)`;
  // Each room's ten senders (batchOf) are its members.
  await database.sql`insert into room_members (room_id, user_id)
    select room_id, user_id from json_to_recordset(${JSON.stringify(users.map((id, at) => ({ room_id: rooms[Math.floor(at / 10)], user_id: id })))}::text::json) as x(room_id uuid, user_id uuid)`;
  process.stderr.write(`${name}: database ${db.name}, writer backend pid ${backend.pid}\n`);
  const repository = process.env.PROBE_NO_BARRIER ? createMessagesRepository(writer.sql) : createMessagesRepository(database.sql, { batchConnection: writer });
  // `--one-query`: as the writer sends the batches of rooms that are not hot (message-writer.ts),
  // committing synchronously inside the statement, no barrier behind it.
  const write = argv.includes('--one-query') ? { releaseLocksEarly: false } : {};
  return { name, database, writer, backendPid: backend.pid, insertBatch: (batch) => repository.insertBatch(batch, write), rooms, users };
}

function batchOf(setup: Setup, size: number, form: Form): NewMessage[] {
  const batch = Array.from({ length: size }, (): NewMessage => {
    const room = Math.floor(Math.random() * setup.rooms.length);
    return {
      id: randomUUID(),
      roomId: setup.rooms[room]!,
      userId: setup.users[room * 10 + Math.floor(Math.random() * 10)]!,
      type: 'text' as const,
      content: 'a message of about the size the bench sends, 60 characters.',
      imageUrl: null,
      clientMessageId: form === 'plain' || form === 'bots' ? null : randomUUID(),
      createdAt: new Date(),
      requireMember: form !== 'bots',
    };
  });
  // A retry sent before its original was answered: same user, room and id as the first.
  if (form === 'repeat' && size > 1) batch[size - 1] = { ...batch[0]!, id: randomUUID() };
  return batch;
}

/** Messages a batch of `size` stores in `form`. */
const storedPerBatch = (size: number, form: Form) => (form === 'repeat' && size > 1 ? size - 1 : size);

/** CPU and time spent by one variant on one batch size, summed over its chunks. */
interface Tally {
  cpuUs: number;
  /** This process's main thread: postgres.js building, sending and reading the batch, as in a gateway. */
  clientUs: number;
  walUs: number;
  ms: number;
  batches: number;
}

/** `count` batches of `size` on one variant, added to `tally`. */
async function chunk(setup: Setup, size: number, form: Form, count: number, walwriter: number | null, tally: Tally) {
  const started = performance.now();
  const cpu0 = onCpuNs(setup.backendPid);
  const client0 = onCpuNs(process.pid);
  const wal0 = walwriter === null ? 0 : onCpuNs(walwriter);
  for (let i = 0; i < count; i++) await setup.insertBatch(batchOf(setup, size, form));
  tally.cpuUs += (onCpuNs(setup.backendPid) - cpu0) / 1000;
  tally.clientUs += (onCpuNs(process.pid) - client0) / 1000;
  tally.walUs += walwriter === null ? 0 : (onCpuNs(walwriter) - wal0) / 1000;
  tally.ms += performance.now() - started;
  tally.batches += count;
}

async function main() {
  const admin = postgres(ADMIN_URL, { max: 1, onnotice: () => {} });
  const setups: Setup[] = [];
  const databases: BenchDatabase[] = [];
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const cleanup = cleanUpOnSignal(async () => {
    for (const setup of setups) {
      await setup.writer.close();
      await setup.database.close();
    }
    for (const db of databases) await db.drop(log);
    await admin.end({ timeout: 5 });
  }, log);
  try {
    const [wal] = await admin<{ pid: number }[]>`select pid from pg_stat_activity where backend_type = 'walwriter'`;
    const walwriter = wal?.pid ?? null;
    for (const variant of variants) {
      const db = BenchDatabase.fresh('batch');
      databases.push(db);
      setups.push(await setUp(variant.name, variant.sql, db));
    }
    // Every variant with every form of messages, each a run of its own.
    const runs = setups.flatMap((setup) => forms.map((form) => ({ setup, form, name: forms.length > 1 ? `${setup.name}, ${form}` : setup.name })));
    // Warm up: plans cached, catalog and index pages in memory.
    for (const run of runs) for (const size of sizes) for (let i = 0; i < 50; i++) await run.setup.insertBatch(batchOf(run.setup, size, run.form));
    // Runs take turns every CHUNK batches, so a burst of other work on the host lands on all of them.
    const CHUNK = 25;
    const results = new Map<string, Tally[]>();
    for (let round = 0; round < rounds; round++) {
      for (const size of sizes) {
        const tallies = runs.map((): Tally => ({ cpuUs: 0, clientUs: 0, walUs: 0, ms: 0, batches: 0 }));
        const started = Date.now();
        for (let done = 0; done < batches && Date.now() - started < stepLimitMs * runs.length; done += CHUNK) {
          for (const [at, run] of runs.entries()) await chunk(run.setup, size, run.form, CHUNK, walwriter, tallies[at]!);
        }
        runs.forEach((run, at) => {
          const key = `${run.name}\u0000${size}`;
          results.set(key, [...(results.get(key) ?? []), tallies[at]!]);
        });
      }
    }
    const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
    const fmt = (value: number) => value.toFixed(value < 10 ? 1 : 0);
    process.stdout.write(`messages: ${forms.join(', ')}; ${roomCount} rooms, ${batches} batches per step, median of ${rounds} rounds (backend CPU; walwriter shared with the server)\n`);
    process.stdout.write('| variant | batch size | backend µs/batch | backend µs/stored message | walwriter µs/batch | client µs/batch | ms/batch |\n|---|---|---|---|---|---|---|\n');
    for (const size of sizes) {
      for (const run of runs) {
        const list = results.get(`${run.name}\u0000${size}`)!;
        const perBatch = median(list.map((r) => r.cpuUs / r.batches));
        process.stdout.write(`| ${run.name} | ${size} | ${fmt(perBatch)} | ${fmt(perBatch / storedPerBatch(size, run.form))} | ${fmt(median(list.map((r) => r.walUs / r.batches)))} | ${fmt(median(list.map((r) => r.clientUs / r.batches)))} | ${median(list.map((r) => r.ms / r.batches)).toFixed(2)} |\n`);
      }
    }
  } finally {
    await cleanup();
  }
}

main().catch((error) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
  process.exitCode = 1;
});
