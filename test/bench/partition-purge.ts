/**
 * `pnpm bench:purge`: what purging a day of messages costs, by dropping its partition (the
 * worker's partition job, docs/partitions.md) against the batched per-room DELETE the sweep
 * used before (1,000 rows a statement, `for update skip locked`, as SWEEP_BATCH_SIZE's
 * default). Each method gets a day of `--rows` messages (1,000,000 by default, in rooms of
 * 1,000) written by INSERT … SELECT generate_series into a throw-away database, then purges it;
 * prints the time and the table's size (pg_total_relation_size over every partition: heap,
 * indexes, TOAST) before and after. The DELETE is bounded by `--delete-seconds` (120): if it
 * has not finished by then, the rest is extrapolated from its rate, and said so.
 *
 *   pnpm bench:purge [--rows 1000000] [--delete-seconds 120]
 *
 * BENCH_DATABASE_URL names the server (default postgres://postgres@127.0.0.1:5432); the
 * database is created with a random name and dropped at the end.
 */
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import postgres from 'postgres';
import { partitionName } from '@chat/db';
import { BenchDatabase } from './lib/bench-database.ts';
import { fillAndDropDay, fillExpiredDay, messagesSize, ROWS_PER_ROOM } from './lib/purge-day.ts';
import { cleanUpOnSignal } from './lib/procs.ts';
import { checkArgs } from './lib/args.ts';

const USAGE = `usage: pnpm bench:purge [--rows 1000000] [--delete-seconds 120]
  (see the header of test/bench/partition-purge.ts)`;
const argv = checkArgs('bench:purge', USAGE, { values: { rows: 'number', 'delete-seconds': 'number' }, flags: [] });
const option = (name: string, fallback: string) => {
  const at = argv.indexOf(`--${name}`);
  return at >= 0 && argv[at + 1] ? argv[at + 1]! : fallback;
};
const rows = Math.max(ROWS_PER_ROOM, Math.min(10_000_000, Number(option('rows', '1000000'))));
const rooms = Math.ceil(rows / ROWS_PER_ROOM);
const deleteBudgetMs = Math.max(5, Math.min(3600, Number(option('delete-seconds', '120')))) * 1000;
const DELETE_BATCH = 1000;
/** The figure: a day at 10,000 messages a second. */
const DAY_AT_10K = 864_000_000;

const db = BenchDatabase.fresh('bench_purge');

const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
const seconds = (ms: number) => `${(ms / 1000).toFixed(ms < 10_000 ? 3 : 1)} s`;
const say = (line: string) => console.log(line);

async function main(): Promise<void> {
  const sql = postgres(db.url, { max: 1, onnotice: () => {}, connection: { application_name: 'bench-purge' } });
  const cleanup = cleanUpOnSignal(async () => {
    await sql.end({ timeout: 5 });
    await db.drop(say);
  }, say);
  try {
    await db.create();
    const userId = randomUUID();
    await sql`insert into users (id, nickname) values (${userId}, 'bench')`;
    const [days] = await sql<{ dropDay: string; deleteDay: string }[]>`
      select to_char((now() at time zone 'UTC')::date - 3, 'YYYY-MM-DD') as "dropDay",
             to_char((now() at time zone 'UTC')::date - 2, 'YYYY-MM-DD') as "deleteDay"`;
    const { dropDay, deleteDay } = days!;
    say(`partition purge benchmark: ${rows.toLocaleString('en-US')} messages in ${rooms} rooms per day, database ${db.name}`);
    const [pg] = await sql<{ version: string }[]>`select version()`;
    say(`  ${pg!.version.split(' on ')[0]}`);

    // 1. The partition job's way: the day's rooms are all marked expired; drop the day.
    say(`\nA. drop the day's partition (worker's partition job)`);
    const drop = await fillAndDropDay(sql, userId, dropDay, rooms);
    say(`  wrote ${rows.toLocaleString('en-US')} messages into ${partitionName(dropDay)} in ${seconds(drop.writeMs)}`);
    say(`  purge time ${seconds(drop.dropMs)} (${drop.estimatedRows.toLocaleString('en-US')} rows by the statistics)`);
    say(`  messages size before ${mib(drop.bytesBefore)}, after ${mib(drop.bytesAfter)}`);

    // 2. The old sweep's way, on a table of the same shape: per room, batches of 1,000.
    say(`\nB. batched DELETE per room (the sweep before partitions), at most ${seconds(deleteBudgetMs)}`);
    const { roomIds, writeMs } = await fillExpiredDay(sql, userId, deleteDay, rooms);
    say(`  wrote ${rows.toLocaleString('en-US')} messages into ${partitionName(deleteDay)} in ${seconds(writeMs)}`);
    const table = partitionName(deleteDay);
    const beforeDelete = await messagesSize(sql);
    let deleted = 0;
    let statements = 0;
    let started = performance.now();
    const deadline = started + deleteBudgetMs;
    rooms: for (const roomId of roomIds) {
      for (let batches = 0; batches < 10_000; batches++) {
        if (performance.now() > deadline) break rooms;
        const result = await sql`
          delete from ${sql(table)} where id in (
            select id from ${sql(table)} where room_id = ${roomId} limit ${DELETE_BATCH} for update skip locked)`;
        statements += 1;
        deleted += result.count;
        if (result.count === 0) break;
      }
    }
    const deleteMs = performance.now() - started;
    const finished = deleted >= rows;
    const rate = deleted / (deleteMs / 1000);
    const afterDelete = await messagesSize(sql);
    say(`  deleted ${deleted.toLocaleString('en-US')} of ${rows.toLocaleString('en-US')} rows in ${seconds(deleteMs)} (${statements} statements, ${Math.round(rate).toLocaleString('en-US')} rows/s)`);
    if (!finished) say(`  not finished within the bound: the whole day would take about ${seconds((rows / rate) * 1000)} at that rate`);
    say(`  messages size before ${mib(beforeDelete)}, after the DELETE ${mib(afterDelete)} (dead rows stay until VACUUM)`);
    let vacuumMs = Number.NaN;
    let afterVacuum = afterDelete;
    if (finished) {
      started = performance.now();
      await sql`vacuum ${sql(table)}`;
      vacuumMs = performance.now() - started;
      afterVacuum = await messagesSize(sql);
      say(`  VACUUM took ${seconds(vacuumMs)}; size after it ${mib(afterVacuum)} (it gives back only empty pages at a file's end; index pages stay)`);
    }

    const deleteTotalMs = (rows / rate) * 1000 + (Number.isNaN(vacuumMs) ? 0 : vacuumMs);
    say(`\nsummary (${rows.toLocaleString('en-US')} messages, one day)`);
    say(`| method | purge time | messages size before | after |`);
    say(`|---|---|---|---|`);
    say(`| DROP of the day's partition | ${seconds(drop.dropMs)} | ${mib(drop.bytesBefore)} | ${mib(drop.bytesAfter)} |`);
    say(`| batched DELETE per room${finished ? ' (+ VACUUM)' : ' (extrapolated, no VACUUM)'} | ${seconds(deleteTotalMs)} | ${mib(beforeDelete)} | ${mib(afterDelete)} after the DELETE, ${mib(afterVacuum)} after VACUUM |`);
    say(`At 10,000 messages a second (${DAY_AT_10K.toLocaleString('en-US')} a day) the DELETE at ${Math.round(rate).toLocaleString('en-US')} rows/s needs ` +
      `${((DAY_AT_10K / rate) / 3600).toFixed(1)} h of one connection per day of messages; the DROP stays a catalog change.`);
  } finally {
    await cleanup();
  }
}

await main();
