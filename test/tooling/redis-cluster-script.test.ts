import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { interruptAfter, ROOT } from './interrupt.ts';

/**
 * README: `pnpm redis:cluster` prints REDIS_BUS_CLUSTER_NODES and stays up "until Ctrl-C, which
 * removes it". Ctrl-C reaches the script twice (from the terminal, and relayed by tsx): the second
 * must not end it halfway through its cleanup, leaving its directory (or nodes) behind.
 */
describe('pnpm redis:cluster', () => {
  it('prints the nodes and, on Ctrl-C (pressed twice), stops them and removes its directory', async () => {
    const { output, signalled } = await interruptAfter('redis:cluster', [], /REDIS_BUS_CLUSTER_NODES=\S+[\s\S]*Ctrl-C stops it\./, {
      again: /Stopping the Redis Cluster/,
    });
    expect(signalled, output).toBe(true);
    const nodes = /REDIS_BUS_CLUSTER_NODES=(127\.0\.0\.1:\d+(?:,127\.0\.0\.1:\d+){2})\n/.exec(output)?.[1];
    expect(nodes, output).toBeDefined();
    const dir = /files in (\S+),?\n/.exec(output)?.[1]?.replace(/,$/, '');
    expect(dir, output).toMatch(/chat-redis-cluster-/);
    expect(output).toContain('Redis Cluster stopped.');
    expect(existsSync(dir!), `${dir} left behind: ${existsSync(dir!) ? readdirSync(dir!).join(' ') : ''}`).toBe(false);
    // No node of it is still running (each redis-server names its port in its command line).
    const ports = nodes!.split(',').map((node) => node.split(':')[1]);
    const running = readdirSync('/proc')
      .filter((entry) => /^\d+$/.test(entry))
      .map((pid) => {
        try {
          return readFileSync(`/proc/${pid}/cmdline`, 'utf8');
        } catch {
          return '';
        }
      })
      .filter((cmd) => cmd.startsWith('redis-server') && ports.some((port) => cmd.includes(`:${port}`)));
    expect(running).toEqual([]);
  }, 60_000);

  it('prints its usage on --help, and a message (no stack trace) on an unknown option', () => {
    const run = (args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', 'infra/redis-cluster.ts', ...args], { cwd: ROOT, encoding: 'utf8', timeout: 30_000 });
    const help = run(['--help']);
    expect(help.status, help.stderr).toBe(0);
    expect(help.stdout).toContain('usage: pnpm redis:cluster');
    const typo = run(['--replica', '1']);
    expect(typo.status).toBe(2);
    expect(typo.stderr).toContain("redis:cluster: Unknown option '--replica'");
    expect(typo.stderr).not.toMatch(/\n\s+at /);
  }, 60_000);
});
