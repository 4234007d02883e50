/**
 * Ids as one Postgres array literal, to be cast with `::text::uuid[]`, distinct.
 *
 * Not `sql.array`: postgres.js picks an array parameter's type when the query is built, from
 * types it fetches once its first connection is up, so on a new client the first query built
 * with `sql.array` sends text and fails ("malformed array literal"). A literal has no such
 * window. Each element is quoted, so an id that is not a UUID fails the cast rather than
 * changing the array.
 */
export const uuidArrayLiteral = (ids: readonly string[]): string =>
  `{${[...new Set(ids)].map((id) => `"${id.replace(/["\\]/g, '\\$&')}"`).join(',')}}`;
