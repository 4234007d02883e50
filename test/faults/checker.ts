/**
 * The checker: what the database holds against what clients were told.
 * - every acknowledged message is stored exactly once, under the id it was acknowledged with;
 * - no (user, clientMessageId) is stored twice, and no retry was acknowledged as another message;
 * - `seq` is gap-free per room;
 * - every observer ends with exactly the room's stored messages.
 */
import type { Sql } from 'postgres';
import type { Observer, SendOp } from './clients.ts';

export interface CheckResult {
  operations: number;
  acknowledged: number;
  lost: number;
  duplicated: number;
  unknown: number;
  /** Never acknowledged, yet stored (a commit whose ack was lost and never retried in time). */
  unknownStored: number;
  seqGaps: number;
  observers: number;
  observersIncomplete: number;
  problems: string[];
}

interface Row {
  id: string;
  room_id: string;
  user_id: string;
  client_message_id: string | null;
  seq: number;
}

export async function storedRows(sql: Sql, roomIds: string[]): Promise<Row[]> {
  return sql<Row[]>`
    select id::text, room_id::text, user_id::text, client_message_id, seq::int as seq
    from messages where room_id in ${sql(roomIds)} and is_deleted = false`;
}

/** Waits (bounded) for every observer to hold its rooms' stored set; returns how long it took. */
export async function waitObservers(sql: Sql, roomIds: string[], observers: Observer[], timeoutMs: number): Promise<number> {
  const started = Date.now();
  while (Date.now() - started < timeoutMs) {
    const byRoom = groupIds(await storedRows(sql, roomIds));
    if (observers.every((observer) => observer.idle() && incompleteRooms(observer, byRoom).length === 0)) return Date.now() - started;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  return -1;
}

function groupIds(rows: Row[]): Map<string, Set<string>> {
  const byRoom = new Map<string, Set<string>>();
  for (const row of rows) {
    let set = byRoom.get(row.room_id);
    if (!set) byRoom.set(row.room_id, (set = new Set()));
    set.add(row.id);
  }
  return byRoom;
}

function incompleteRooms(observer: Observer, byRoom: Map<string, Set<string>>): string[] {
  const bad: string[] = [];
  for (const roomId of observer.rooms.keys()) {
    const expected = byRoom.get(roomId) ?? new Set<string>();
    const seen = observer.seen(roomId);
    if (seen.size !== expected.size || [...expected].some((id) => !seen.has(id))) bad.push(roomId);
  }
  return bad;
}

export async function check(sql: Sql, roomIds: string[], ops: SendOp[], observers: Observer[]): Promise<CheckResult> {
  const rows = await storedRows(sql, roomIds);
  const problems: string[] = [];
  const byKey = new Map<string, Row[]>();
  for (const row of rows) {
    if (row.client_message_id === null) continue;
    const key = `${row.user_id}/${row.client_message_id}`;
    byKey.set(key, [...(byKey.get(key) ?? []), row]);
  }
  const byId = new Map(rows.map((row) => [row.id, row]));

  let lost = 0;
  let duplicated = 0;
  let unknownStored = 0;
  for (const op of ops) {
    const stored = byKey.get(`${op.userId}/${op.clientMessageId}`) ?? [];
    if (op.conflictingAck) {
      duplicated += 1;
      problems.push(`acked twice as different messages: ${op.clientMessageId}`);
    }
    if (!op.acked) {
      if (stored.length > 0) unknownStored += 1;
      continue;
    }
    if (stored.length === 0 || !byId.has(op.acked.messageId)) {
      lost += 1;
      if (problems.length < 20) problems.push(`lost: ack ${op.acked.messageId} (seq ${op.acked.seq}) for ${op.clientMessageId}`);
    }
    if (stored.length > 1) {
      duplicated += stored.length - 1;
      problems.push(`stored ${stored.length}×: ${op.clientMessageId}`);
    }
  }
  // Rows nobody sent through the suite, stored twice under one key, are duplicates too.
  for (const [key, list] of byKey) {
    if (list.length > 1 && !ops.some((op) => `${op.userId}/${op.clientMessageId}` === key)) {
      duplicated += list.length - 1;
      problems.push(`stored ${list.length}×: ${key}`);
    }
  }

  let seqGaps = 0;
  const seqsByRoom = new Map<string, number[]>();
  for (const row of rows) seqsByRoom.set(row.room_id, [...(seqsByRoom.get(row.room_id) ?? []), row.seq]);
  for (const [roomId, seqs] of seqsByRoom) {
    seqs.sort((a, b) => a - b);
    seqs.forEach((seq, index) => {
      if (seq !== index + 1) seqGaps += 1;
    });
    if (seqs.some((seq, index) => seq !== index + 1)) problems.push(`seq not gap-free in room ${roomId}`);
  }

  const byRoom = groupIds(rows);
  let observersIncomplete = 0;
  for (const observer of observers) {
    const bad = incompleteRooms(observer, byRoom);
    if (bad.length > 0) {
      observersIncomplete += 1;
      if (problems.length < 30) {
        const roomId = bad[0]!;
        const missing = [...(byRoom.get(roomId) ?? [])].filter((id) => !observer.seen(roomId).has(id)).length;
        problems.push(`observer ${observer.client.user.nickname} misses ${missing} message(s) in ${bad.length} room(s)`);
      }
    }
  }

  const acknowledged = ops.filter((op) => op.acked).length;
  return {
    operations: ops.length,
    acknowledged,
    lost,
    duplicated,
    unknown: ops.length - acknowledged,
    unknownStored,
    seqGaps,
    observers: observers.length,
    observersIncomplete,
    problems,
  };
}
