/**
 * `pnpm loadtest:tokens --url … --count N --out FILE`: the tokens Artillery's scenario reads
 * (test/load/artillery.yml), one per virtual user, as a CSV with a `token` column. Artillery's
 * Socket.IO engine opens each virtual user's socket before the first step of its flow, so the
 * token must be known before the flow starts: a payload file, not a login step. Minted from
 * JWT_SECRET (with JWT_ISSUER / JWT_AUDIENCE when set) or taken from the token endpoint, as
 * `pnpm loadtest` does. The file is written readable by its owner only; tokens are never printed.
 */
import { chmodSync, existsSync, writeFileSync } from 'node:fs';
import { describeError, pool, tokenSource } from './tokens.ts';

const MAX_COUNT = 20_000;
const USAGE = `usage: pnpm loadtest:tokens --url http://host:port --count N --out FILE [--token-endpoint URL] [--valid-seconds 7200]
  count ≤ ${MAX_COUNT}; tokens are minted from JWT_SECRET when set, else taken from <url>/api/auth/token`;

function fail(message: string): never {
  process.stderr.write(`loadtest:tokens: ${message}\n${USAGE}\n`);
  process.exit(2);
}

const argv = process.argv.slice(2).filter((arg) => arg !== '--');
if (argv.includes('--help') || argv.includes('-h')) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
const values = new Map<string, string>();
for (let i = 0; i < argv.length; i += 2) {
  const key = argv[i]!;
  if (!key.startsWith('--') || argv[i + 1] === undefined) fail(`unexpected argument ${key}`);
  values.set(key.slice(2), argv[i + 1]!);
}
for (const key of values.keys()) if (!['url', 'count', 'out', 'token-endpoint', 'valid-seconds'].includes(key)) fail(`unknown option --${key}`);
const url = values.get('url');
const out = values.get('out');
const count = Number(values.get('count'));
const validSeconds = Number(values.get('valid-seconds') ?? 7200);
if (!url || !/^https?:\/\//.test(url)) fail('--url must be an http(s) URL');
if (!out) fail('--out is required');
if (!Number.isInteger(count) || count < 1 || count > MAX_COUNT) fail(`--count must be an integer from 1 to ${MAX_COUNT}`);
if (!Number.isInteger(validSeconds) || validSeconds < 60 || validSeconds > 86_400) fail('--valid-seconds must be from 60 to 86400');

try {
  const mint = await tokenSource({ urls: [url.replace(/\/+$/, '')], tokenEndpoint: values.get('token-endpoint') ?? null, validSeconds });
  const tokens = await pool(count, 32, (i) => mint(`artillery${i}`));
  // `mode` applies only to a file writeFileSync creates: one left by an earlier run (or made by
  // hand) keeps its own, perhaps readable by everyone, so it is narrowed before the tokens go in.
  if (existsSync(out)) chmodSync(out, 0o600);
  writeFileSync(out, `token\n${tokens.join('\n')}\n`, { mode: 0o600 });
  process.stderr.write(`wrote ${count} tokens to ${out}\n`);
} catch (error) {
  // One line, not a stack trace: the endpoint unreachable or refusing, the file not writable.
  process.stderr.write(`loadtest:tokens failed: ${describeError(error)}\n`);
  process.exit(1);
}
