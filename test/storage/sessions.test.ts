import { randomUUID } from 'node:crypto';
import { describe, expect } from 'vitest';
import { asDate, createSessionsRepository, type Database } from '@chat/db';
import { databaseTest } from '../support/index.ts';

const it = databaseTest({ maxConnections: 2 });

/**
 * What a connecting socket's user costs Postgres. A returning user whose token carries the name
 * already stored must cost a read and nothing else: `insert … on conflict do update … where false`
 * locks the row anyway, and a row lock is a write (the row's xmax, WAL, a transaction id, a commit
 * that waits for its flush) — on every handshake and every authenticated request, so a reconnect
 * storm of N users was N durable commits.
 */
describe('sessions: sign-in on real Postgres', () => {
  let database: Database;

  it.beforeAll(({ database: db }) => {
    database = db;
  });

  /**
   * The row's xmax: the last transaction that updated, deleted or locked it (0: none). Room
   * memberships lock their user rows too (the foreign key's key-share lock), so tests compare
   * it before and after rather than with 0.
   */
  const xmaxOf = async (id: string) =>
    (await database.sql<{ xmax: string }[]>`select xmax::text as xmax from users where id = ${id}`)[0]?.xmax;
  const nicknameOf = async (id: string) =>
    (await database.sql<{ nickname: string }[]>`select nickname from users where id = ${id}`)[0]?.nickname;

  async function room(opts: { live: boolean; members: string[] }) {
    const id = randomUUID();
    await database.sql`insert into rooms (id, name, created_by, member_count, created_at, expires_at)
      values (${id}, 'r', ${opts.members[0]!}, ${opts.members.length}, now() - interval '2 days',
              now() + ${opts.live ? '1 day' : '-1 hour'}::interval)`;
    for (const member of opts.members) await database.sql`insert into room_members (room_id, user_id) values (${id}, ${member})`;
    return id;
  }

  it('a lone sign-in (REST, or a handshake alone in its turn) stores a new name, renames, and leaves an unchanged user untouched (no row lock)', async () => {
    const sessions = createSessionsRepository(database.sql);
    const id = randomUUID();
    await sessions.open([{ id, nickname: '처음', rooms: true }]);
    expect(await nicknameOf(id)).toBe('처음');
    await sessions.open([{ id, nickname: '다음', rooms: true }]);
    expect(await nicknameOf(id)).toBe('다음');
    const before = await xmaxOf(id);
    await sessions.open([{ id, nickname: '다음', rooms: true }]);
    await sessions.open([{ id, nickname: '다음', rooms: true }]);
    expect(await xmaxOf(id)).toBe(before);
    expect(await nicknameOf(id)).toBe('다음');
  });

  it('reads no rooms for a request that does not ask for them (REST), and all of them when one of the same user does', async () => {
    const sessions = createSessionsRepository(database.sql);
    const [member, other] = [randomUUID(), randomUUID()];
    await database.sql`insert into users (id, nickname) values (${member}, '회원'), (${other}, '다른')`;
    const live = await room({ live: true, members: [member, other] });
    const [rest] = await sessions.open([{ id: member, nickname: '회원', rooms: false }]);
    expect(rest).toEqual({ nickname: '회원', rooms: [] });
    const [restAgain, handshake, otherRest] = await sessions.open([
      { id: member, nickname: null, rooms: false },
      { id: member, nickname: null, rooms: true },
      { id: other, nickname: null, rooms: false },
    ]);
    expect(handshake!.rooms.map((r) => r.id)).toEqual([live]);
    expect(restAgain!.rooms.map((r) => r.id)).toEqual([live]);
    expect(otherRest).toEqual({ nickname: '다른', rooms: [] });
  });

  it('opens many sessions in one statement: creates, renames, reads, refuses the unknown, and lists live rooms only', async () => {
    const sessions = createSessionsRepository(database.sql);
    const [returning, renamed, tokenWithoutName, unknown, fresh, noRooms] = Array.from({ length: 6 }, () => randomUUID());
    await database.sql`insert into users (id, nickname) values
      (${returning!}, '그대로'), (${renamed!}, '옛이름'), (${tokenWithoutName!}, '저장된'), (${noRooms!}, '혼자')`;
    const live = await room({ live: true, members: [returning!, renamed!, tokenWithoutName!] });
    const second = await room({ live: true, members: [returning!] });
    await room({ live: false, members: [returning!, renamed!] });
    const before = { returning: await xmaxOf(returning!), noRooms: await xmaxOf(noRooms!), tokenWithoutName: await xmaxOf(tokenWithoutName!) };

    const opened = await sessions.open([
      { id: returning!, nickname: '그대로', rooms: true },
      { id: renamed!, nickname: '새이름', rooms: true },
      { id: tokenWithoutName!, nickname: null, rooms: true },
      { id: unknown!, nickname: null, rooms: true },
      { id: fresh!, nickname: '신규', rooms: true },
      { id: noRooms!, nickname: '혼자', rooms: true },
    ]);

    // One answer per request, in the requests' order.
    expect(opened).toHaveLength(6);
    expect(opened[0]?.nickname).toBe('그대로');
    const ids = (session: (typeof opened)[number]) => session && { nickname: session.nickname, roomIds: session.rooms.map((r) => r.id).sort() };
    expect(ids(opened[0]!)).toEqual({ nickname: '그대로', roomIds: [live, second].sort() });
    expect(ids(opened[1]!)).toEqual({ nickname: '새이름', roomIds: [live] });
    expect(ids(opened[2]!)).toEqual({ nickname: '저장된', roomIds: [live] });
    expect(opened[3]).toBeNull();
    expect(ids(opened[4]!)).toEqual({ nickname: '신규', roomIds: [] });
    expect(ids(opened[5]!)).toEqual({ nickname: '혼자', roomIds: [] });
    // Each room comes with what the pod's room cache keeps of it.
    const [stored] = await database.sql<{ name: string; created_by: string; created_at: string; expires_at: string }[]>`
      select name, created_by, created_at, expires_at from rooms where id = ${live}`;
    expect(opened[1]?.rooms[0]).toEqual({ id: live, name: stored!.name, createdBy: stored!.created_by, createdAt: asDate(stored!.created_at), expiresAt: asDate(stored!.expires_at) });

    expect(await nicknameOf(renamed!)).toBe('새이름');
    expect(await nicknameOf(fresh!)).toBe('신규');
    expect(await nicknameOf(unknown!)).toBeUndefined();
    // The returning users whose names did not change were read, not written.
    expect({ returning: await xmaxOf(returning!), noRooms: await xmaxOf(noRooms!), tokenWithoutName: await xmaxOf(tokenWithoutName!) }).toEqual(before);
  });

  it('takes the last name when one user connects twice in a batch, and an empty batch asks nothing', async () => {
    const sessions = createSessionsRepository(database.sql);
    const id = randomUUID();
    const opened = await sessions.open([
      { id, nickname: '하나', rooms: true },
      { id, nickname: '둘', rooms: true },
    ]);
    expect(opened).toEqual([
      { nickname: '둘', rooms: [] },
      { nickname: '둘', rooms: [] },
    ]);
    expect(await nicknameOf(id)).toBe('둘');
    expect(await sessions.open([])).toEqual([]);
  });

  it('a storm of 2,000 returning users is read in one call and nothing is written', async () => {
    const sessions = createSessionsRepository(database.sql);
    const ids = Array.from({ length: 2000 }, () => randomUUID());
    await database.sql`insert into users (id, nickname)
      select id::uuid, 'storm' from json_array_elements_text(${JSON.stringify(ids)}::text::json) as x(id)`;
    const shared = await room({ live: true, members: ids.slice(0, 50) });
    const xmaxes = async () =>
      (await database.sql<{ id: string; xmax: string }[]>`
        select id, xmax::text as xmax from users where id in (select unnest(${`{${ids.join(',')}}`}::uuid[])) order by id`).map((r) => `${r.id}:${r.xmax}`);
    const before = await xmaxes();
    const opened = await sessions.open(ids.map((id) => ({ id, nickname: 'storm', rooms: true })));
    expect(opened.filter((session) => session !== null)).toHaveLength(2000);
    expect(opened[0]?.rooms.map((r) => r.id)).toEqual([shared]);
    expect(opened[1999]?.rooms).toEqual([]);
    expect(await xmaxes()).toEqual(before);
  });
});
