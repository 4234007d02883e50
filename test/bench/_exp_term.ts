import { randomUUID } from 'node:crypto';
import postgres from 'postgres';
import { createDatabase, createMessagesRepository, ensureDatabase, runMigrations, dropDatabase } from '@chat/db';
const url = `postgres://postgres@127.0.0.1:5432/chat_exp_term_${Date.now()}`;
await ensureDatabase(url); await runMigrations(url);
const admin = postgres('postgres://postgres@127.0.0.1:5432/postgres', { max: 1 });
const a = createDatabase({ url, maxConnections: Number(process.env.MAXC ?? 1), applicationName: 'exp-writer', statementTimeoutMs: 2000 });
const owner = randomUUID(); const room = randomUUID();
await a.sql`insert into users (id, nickname) values (${owner}, 'o')`;
await a.sql`insert into rooms (id, name, created_by, member_count, created_at, expires_at) values (${room}, 'r', ${owner}, 1, now(), now() + interval '1 day')`;
const repo = createMessagesRepository(a.sql);
let ok = 0, failed = 0; const errors = new Map<string, number>();
const deadline = Date.now() + 8000;
setTimeout(async () => { const r = await admin`select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'exp-writer'`; console.log('terminated', r.length); }, 2000);
setTimeout(async () => { const r = await admin`select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'exp-writer'`; console.log('terminated again', r.length); }, 2300);
while (Date.now() < deadline) {
  const t = Date.now();
  const result = await Promise.race([
    repo.insertBatch([{ id: randomUUID(), roomId: room, userId: owner, type: 'text', content: 'x', imageUrl: null, clientMessageId: null, createdAt: new Date() }]).then(() => 'ok', (e: any) => `err ${e.code ?? e.message}`),
    new Promise((r) => setTimeout(() => r('HUNG'), 3000)),
  ]);
  if (result === 'ok') ok++; else { failed++; errors.set(String(result), (errors.get(String(result)) ?? 0) + 1); }
  if (result !== 'ok') console.log(new Date().toISOString(), result, Date.now() - t, 'ms');
  await new Promise((r) => setTimeout(r, 5));
}
console.log({ ok, failed, errors: [...errors] });
await a.close().catch(() => {}); await admin.end(); await dropDatabase(url);
process.exit(0);
