import type { Sql } from 'postgres';
import { describe, expect } from 'vitest';
import { createRoom, emitAck, joinedOffline, makeUser, monitorRedis, request, sleep, type TestUser } from '@chat/testing';
import { clusterTest } from '../support/index.ts';

/**
 * Issue 18, point 6: GET /api/rooms/:roomId/members is for the room's members only (a token,
 * and a membership: 401 / 403 otherwise), paged like history (`limit` ≤ 100, default 50, and
 * `after` = the last userId of the previous page), and each page asks Redis for the members'
 * live status in one call, not one look-up per member.
 */

const it = clusterTest({ pods: 2 });

type Page = {
  members: { userId: string; nicknameMask: string; joinedAt: string; online: boolean }[];
  memberCount: number;
  hasMore: boolean;
  nextCursor: string | null;
};

const UNAUTHORIZED = { statusCode: 401, error: 'Unauthorized', message: '인증이 필요합니다', code: 'UNAUTHORIZED' };
const NOT_A_MEMBER = { statusCode: 403, error: 'Forbidden', message: '방에 참여 중이 아닙니다', code: 'NOT_A_MEMBER' };

/**
 * A room with `count` members in joining order: the owner joins for real, the others are
 * written straight into the database (faster than a socket each), a second apart after it.
 */
async function roomWithMembers(url: string, sql: Sql, count: number) {
  const owner = await makeUser('방장');
  const room = await createRoom(url, owner);
  await joinedOffline(url, owner, room.roomId);
  const members: TestUser[] = [owner];
  for (let i = 1; i < count; i++) members.push(await makeUser(`회원${i}`));
  const others = members.slice(1);
  if (others.length > 0) {
    await sql`insert into users ${sql(others.map((user) => ({ id: user.userId, nickname: user.nickname })))}`;
    await sql`
      insert into room_members (room_id, user_id, joined_at)
      select ${room.roomId}::uuid, u.id, m.joined_at + make_interval(secs => u.ord::double precision)
      from unnest(${others.map((user) => user.userId)}::uuid[]) with ordinality as u(id, ord),
           room_members m
      where m.room_id = ${room.roomId} and m.user_id = ${owner.userId}`;
    await sql`update rooms set member_count = ${count} where id = ${room.roomId}`;
  }
  return { roomId: room.roomId, owner, members };
}

async function page(url: string, roomId: string, viewer: TestUser, query = '') {
  return request<Page>(url, 'GET', `/api/rooms/${roomId}/members${query}`, { token: viewer.token });
}

describe('GET /api/rooms/:roomId/members', () => {
  it('answers 401 without a token or with a bad one, 403 to a user who is not a member, 404 for no such room', async ({ url, sql }) => {
    const { roomId } = await roomWithMembers(url, sql, 2);
    expect(await request(url, 'GET', `/api/rooms/${roomId}/members`)).toEqual({ status: 401, body: UNAUTHORIZED });
    expect(await request(url, 'GET', `/api/rooms/${roomId}/members`, { token: 'not-a-token' })).toEqual({ status: 401, body: UNAUTHORIZED });
    const stranger = await makeUser('낯선이');
    expect(await page(url, roomId, stranger)).toEqual({ status: 403, body: NOT_A_MEMBER });
    expect(await page(url, '00000000-0000-4000-8000-000000000000', stranger)).toMatchObject({ status: 404, body: { code: 'ROOM_NOT_FOUND' } });
  });

  it('a member who left no longer sees the list', async ({ url, sql, connect }) => {
    const { roomId, members } = await roomWithMembers(url, sql, 3);
    const leaver = members[2]!;
    expect((await page(url, roomId, leaver)).status).toBe(200);
    const socket = await connect(url, leaver.token);
    expect((await emitAck(socket, 'leave-room', { roomId })).ok).toBe(true);
    expect(await page(url, roomId, leaver)).toEqual({ status: 403, body: NOT_A_MEMBER });
  });

  it('pages in joining order: 50 by default, limit ≤ 100, `after` the last userId, hasMore, memberCount the whole room', async ({ cluster, sql }) => {
    const [a, b] = cluster.pods;
    const { roomId, owner, members } = await roomWithMembers(a!.url, sql, 120);
    const ids = members.map((member) => member.userId);

    const first = await page(a!.url, roomId, owner);
    expect(first.status).toBe(200);
    expect(first.body.members.map((member) => member.userId)).toEqual(ids.slice(0, 50));
    expect(first.body).toMatchObject({ memberCount: 120, hasMore: true });

    // Followed across pods with the largest page.
    const seen: string[] = [];
    let after: string | undefined;
    for (let round = 0; round < 10; round++) {
      const next = await page(round % 2 ? b!.url : a!.url, roomId, owner, `?limit=100${after ? `&after=${after}` : ''}`);
      expect(next.status).toBe(200);
      seen.push(...next.body.members.map((member) => member.userId));
      expect(next.body.memberCount).toBe(120);
      if (!next.body.hasMore) break;
      after = next.body.members.at(-1)!.userId;
    }
    expect(seen).toEqual(ids);

    const small = await page(a!.url, roomId, owner, `?limit=7&after=${ids[110]}`);
    expect(small.body.members.map((member) => member.userId)).toEqual(ids.slice(111, 118));
    expect(small.body.hasMore).toBe(true);
    const last = await page(a!.url, roomId, owner, `?limit=9&after=${ids[110]}`);
    expect(last.body).toMatchObject({ hasMore: false });
    expect(last.body.members).toHaveLength(9);
  });

  it('validates limit and after like history', async ({ url, sql }) => {
    const { roomId, owner } = await roomWithMembers(url, sql, 2);
    for (const limit of ['101', '9999999999', '99999999999999999999']) {
      expect(await page(url, roomId, owner, `?limit=${limit}`), limit).toMatchObject({ status: 400, body: { message: 'limit은 100을 초과할 수 없습니다', code: 'LIMIT_TOO_LARGE' } });
    }
    for (const limit of ['0', '-1', '1.5', 'ten']) {
      expect(await page(url, roomId, owner, `?limit=${limit}`), limit).toMatchObject({ status: 400, body: { code: 'INVALID_LIMIT' } });
    }
    // A cursor that names no member of the room must not restart the list from the top.
    const stranger = await makeUser('낯선이');
    for (const after of [stranger.userId, 'not-a-uuid']) {
      expect(await page(url, roomId, owner, `?after=${after}`), after).toMatchObject({ status: 400, body: { code: 'INVALID_REQUEST' } });
    }
  });

  it('[ext] `cursor` = the previous page\'s nextCursor continues after its last member has left, or left and rejoined', async ({ url, sql, connect }) => {
    const { roomId, owner, members } = await roomWithMembers(url, sql, 7);
    const ids = members.map((member) => member.userId);
    // The fixture's members joined seconds after now; a rejoin must land after all of them.
    await sql`update room_members set joined_at = joined_at - interval '1 minute' where room_id = ${roomId}`;

    const first = await page(url, roomId, owner, '?limit=3');
    expect(first.body.members.map((member) => member.userId)).toEqual(ids.slice(0, 3));
    expect(first.body.hasMore).toBe(true);
    expect(typeof first.body.nextCursor).toBe('string');

    // The last member of page 1 leaves before page 2 is asked for: `after` names nobody in the
    // room now (400, as documented), and the cursor still knows where page 1 ended.
    const leaver = members[2]!;
    const socket = await connect(url, leaver.token);
    expect((await emitAck(socket, 'leave-room', { roomId })).ok).toBe(true);
    expect(await page(url, roomId, owner, `?limit=3&after=${leaver.userId}`)).toMatchObject({ status: 400, body: { code: 'INVALID_REQUEST' } });
    const second = await page(url, roomId, owner, `?limit=3&cursor=${first.body.nextCursor}`);
    expect(second.status).toBe(200);
    expect(second.body.members.map((member) => member.userId)).toEqual(ids.slice(3, 6));
    expect(second.body).toMatchObject({ hasMore: true, memberCount: 6 });

    // The last member of page 2 leaves and joins again: `after` would now jump to the end of the
    // list (their new place); the cursor continues where page 2 ended, and they are met again there.
    const rejoiner = members[5]!;
    const again = await connect(url, rejoiner.token);
    expect((await emitAck(again, 'leave-room', { roomId })).ok).toBe(true);
    expect((await emitAck(again, 'join-room', { roomId })).ok).toBe(true);
    const third = await page(url, roomId, owner, `?limit=3&cursor=${second.body.nextCursor}`);
    expect(third.body.members.map((member) => member.userId)).toEqual([ids[6], rejoiner.userId]);
    expect(third.body).toMatchObject({ hasMore: false, nextCursor: null });
  });

  it('[ext] refuses a cursor that is not one this server gave, and `after` with `cursor` together', async ({ url, sql }) => {
    const { roomId, owner, members } = await roomWithMembers(url, sql, 3);
    const first = await page(url, roomId, owner, '?limit=1');
    const cursor = first.body.nextCursor!;
    const forged = [
      'x',
      '12',
      `12:${'0'.repeat(36)}`,
      `-12:${owner.userId}`,
      `1.5:${owner.userId}`,
      `99999999999999999:${owner.userId}`,
      `${cursor}=`,
    ];
    for (const bad of forged) {
      expect(await page(url, roomId, owner, `?cursor=${encodeURIComponent(bad)}`), bad).toMatchObject({ status: 400, body: { code: 'INVALID_REQUEST' } });
    }
    expect(await page(url, roomId, owner, `?cursor=${cursor}&after=${members[0]!.userId}`)).toMatchObject({ status: 400, body: { code: 'INVALID_REQUEST' } });
  });

  it('asks Redis for a page\'s live status in one call, not one look-up per member', async ({ cluster, sql }) => {
    const [a] = cluster.pods;
    const { roomId, owner } = await roomWithMembers(a!.url, sql, 60);
    // What Redis runs for this cluster's prefix while the page is served (MONITOR shows the
    // commands a script runs too).
    const reads: string[] = [];
    const monitor = await monitorRedis(cluster.redisUrl, ([command, key]) => {
      if (/^(hget|hmget|hgetall|get|mget|exists)$/i.test(command ?? '') && key?.startsWith(`${cluster.redisPrefix}:presence:`)) reads.push(command!);
    });
    try {
      await sleep(100);
      const result = await page(a!.url, roomId, owner);
      expect(result.status).toBe(200);
      expect(result.body.members).toHaveLength(50);
      await sleep(100);
      // One read per live pod at most (two here), whatever the page's size.
      expect(reads.length).toBeGreaterThan(0);
      expect(reads.length).toBeLessThanOrEqual(2);
    } finally {
      monitor.close();
    }
  });
});
