import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '@chat/testing/ports';
import { ROOT } from './interrupt.ts';

/**
 * test/load/README.md's `pnpm loadtest` and `pnpm loadtest:tokens`, as a load-test author meets
 * them: `--help`, a target that is down or refuses, an output file that exists. Each failure is
 * one line saying what is wrong (no stack trace), and no token or secret reaches the terminal.
 */
const SECRET = 'load-scripts-test-secret-0123456789abcdef';
const scratch = mkdtempSync(path.join(tmpdir(), 'load-scripts-'));
/** A token endpoint that refuses everyone, as a target without the development login. */
let refusing: Server;
let refusingUrl = '';

beforeAll(async () => {
  refusing = createServer((_request, response) => response.writeHead(404).end());
  await new Promise<void>((resolve) => refusing.listen(0, '127.0.0.1', resolve));
  const address = refusing.address();
  refusingUrl = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
});
afterAll(async () => {
  await new Promise((resolve) => refusing.close(resolve));
  rmSync(scratch, { recursive: true, force: true });
});

/** Asynchronous, so that this process's refusing endpoint can answer the script meanwhile. */
function run(script: string, args: string[], env: Record<string, string | undefined> = {}): Promise<{ status: number | null; out: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', script, ...args],
      { cwd: ROOT, encoding: 'utf8', timeout: 30_000, env: { ...process.env, JWT_SECRET: undefined, ...env } },
      (error, stdout, stderr) => resolve({ status: error ? (typeof error.code === 'number' ? error.code : null) : 0, out: `${stdout}${stderr}` }),
    );
  });
}

describe('pnpm loadtest', () => {
  it('prints its usage on --help', async () => {
    const help = await run('test/load/loadtest.ts', ['--help']);
    expect(help.status, help.out).toBe(0);
    expect(help.out).toContain('usage: pnpm loadtest --url');
  });

  it('says why when the target is down', async () => {
    // A free loopback port: nothing listens there.
    const down = await run('test/load/loadtest.ts', ['--url', `http://127.0.0.1:${await freePort()}`, '--clients', '2', '--room-size', '2', '--rate', '1', '--duration', '1'], { JWT_SECRET: SECRET });
    expect(down.status, down.out).toBe(1);
    expect(down.out).toMatch(/loadtest failed: .*ECONNREFUSED/);
    expect(down.out).not.toContain(SECRET);
  });
});

describe('pnpm loadtest:tokens', () => {
  it('prints its usage on --help', async () => {
    const help = await run('test/load/artillery-tokens.ts', ['--', '--help']);
    expect(help.status, help.out).toBe(0);
    expect(help.out).toContain('usage: pnpm loadtest:tokens --url');
  });

  it('fails in one line when the token endpoint refuses or the file cannot be written', async () => {
    const refused = await run('test/load/artillery-tokens.ts', ['--url', refusingUrl, '--count', '2', '--out', path.join(scratch, 'refused.csv')]);
    expect(refused.status, refused.out).toBe(1);
    expect(refused.out).toContain('loadtest:tokens failed: token endpoint answered 404');
    expect(refused.out).not.toMatch(/\n\s+at /);
    const unwritable = await run('test/load/artillery-tokens.ts', ['--url', refusingUrl, '--count', '2', '--out', path.join(scratch, 'no-such-dir', 't.csv')], { JWT_SECRET: SECRET });
    expect(unwritable.status, unwritable.out).toBe(1);
    expect(unwritable.out).toMatch(/loadtest:tokens failed: ENOENT/);
    expect(unwritable.out).not.toMatch(/\n\s+at /);
    expect(unwritable.out).not.toContain(SECRET);
  });

  it('leaves the tokens readable by their owner only, even in a file that was readable by all', async () => {
    const out = path.join(scratch, 'tokens.csv');
    writeFileSync(out, 'old\n', { mode: 0o644 });
    const minted = await run('test/load/artillery-tokens.ts', ['--url', refusingUrl, '--count', '3', '--out', out], { JWT_SECRET: SECRET });
    expect(minted.status, minted.out).toBe(0);
    const lines = readFileSync(out, 'utf8').trim().split('\n');
    expect(lines[0]).toBe('token');
    expect(lines).toHaveLength(4);
    expect(statSync(out).mode & 0o777).toBe(0o600);
    for (const token of lines.slice(1)) expect(minted.out).not.toContain(token);
    expect(minted.out).not.toContain(SECRET);
  });
});
