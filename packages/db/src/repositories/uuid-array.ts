/**
 * Ids as one Postgres array literal, to be cast with `::text::uuid[]`, distinct.
 *
 * Not `sql.array`: postgres.js picks an array parameter's type when the query is built, from
 * types it fetches once its first connection is up, so on a new client the first query built
 * with `sql.array` sends text and fails ("malformed array literal"). A literal has no such
 * window. Each element is quoted, so an id that is not a UUID fails the cast rather than
 * changing the array.
 *
 * Where the cast is evaluated matters: in a FROM item (`unnest($1::text::uuid[])`, a set to
 * join) or an init plan (`(select $1::text::uuid[])`) it is parsed once per statement, but as a
 * bare `= any($1::text::uuid[])` in a WHERE clause Postgres parses the whole literal again for
 * every row it compares, quadratic in the ids: 3,000 users over 3,000 memberships took 6.3 s
 * instead of 10 ms (test/storage/bulk-lookups.test.ts).
 */
export const uuidArrayLiteral = (ids: readonly string[]): string =>
  `{${[...new Set(ids)].map((id) => `"${id.replace(/["\\]/g, '\\$&')}"`).join(',')}}`;

/**
 * Integers as one array literal, to be cast with `::text::int8[]` (not `sql.array`: see above),
 * in order. Beside a `uuidArrayLiteral` as a parallel column only when the ids are distinct.
 */
export const integerArrayLiteral = (values: readonly number[]): string => `{${values.map((value) => String(Math.trunc(value))).join(',')}}`;
