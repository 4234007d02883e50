import type { Sql } from 'postgres';

/** One Idempotency-Key as a call uses it: whose, for which room, and what the request was. */
export interface IdempotencyClaim {
  apiKeyId: string;
  idempotencyKey: string;
  roomId: string;
  /** Hex SHA-256 of the request (room, sender and message fields). */
  requestSha256: string;
}

/**
 * What each server API Idempotency-Key was first used for, per API key (PROTOCOL §17, migration
 * 0004). The message itself is deduplicated by the group commit on messages' unique index; this
 * only answers whether a key is reused for a different request.
 */
export function createServerIdempotencyRepository(sql: Sql) {
  return {
    /**
     * Records each key's request unless the key was used before, in one statement; answers per
     * claim, in order, whether it matches what the key was first used for (true for a first use).
     * A concurrent first use of the same key waits on the primary key and then matches or not.
     * Committed asynchronously: the message write that follows flushes the log past it, and a
     * claim lost with a crash before that had no message behind it.
     */
    async claim(claims: readonly IdempotencyClaim[]): Promise<boolean[]> {
      if (claims.length === 0) return [];
      const values = claims.map((claim) => [claim.apiKeyId, claim.idempotencyKey, claim.roomId, claim.requestSha256]);
      // A concurrent first use commits after this statement's snapshot: its row is then invisible
      // to the read below although the insert skipped the key. Read again for those (bounded).
      for (let attempt = 0; attempt < 3; attempt++) {
        const rows = await sql.begin(async (tx) => {
          await tx`set local synchronous_commit = off`;
          return tx<{ api_key_id: string; idempotency_key: string; request_sha256: string }[]>`
            with wanted (api_key_id, idempotency_key, room_id, request_sha256) as (values ${tx(values)}),
            inserted as (
              insert into server_idempotency_keys (api_key_id, idempotency_key, room_id, request_sha256)
              select api_key_id, idempotency_key, room_id::uuid, request_sha256 from wanted
              on conflict (api_key_id, idempotency_key) do nothing
              returning api_key_id, idempotency_key, request_sha256)
            select api_key_id, idempotency_key, request_sha256 from inserted
            union all
            select k.api_key_id, k.idempotency_key, k.request_sha256
            from server_idempotency_keys k join wanted w using (api_key_id, idempotency_key)`;
        });
        const firstUse = new Map(rows.map((row) => [`${row.api_key_id}\n${row.idempotency_key}`, row.request_sha256]));
        if (claims.every((claim) => firstUse.has(`${claim.apiKeyId}\n${claim.idempotencyKey}`))) {
          return claims.map((claim) => firstUse.get(`${claim.apiKeyId}\n${claim.idempotencyKey}`) === claim.requestSha256);
        }
      }
      throw new Error('an idempotency key row stayed invisible after its insert conflicted');
    },
  };
}

export type ServerIdempotencyRepository = ReturnType<typeof createServerIdempotencyRepository>;
