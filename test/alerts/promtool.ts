/**
 * promtool, Prometheus's own checker: from PATH, or else from Debian's `prometheus` package,
 * downloaded (not installed: no service is set up) and unpacked under node_modules/.cache/promtool.
 * Used by `pnpm test:alerts` (rules) and test/containers/observability-config.test.ts (config).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

export function findPromtool(): string {
  const onPath = spawnSync('promtool', ['--version'], { stdio: 'ignore' });
  if (onPath.status === 0) return 'promtool';
  const cache = path.join(root, 'node_modules/.cache/promtool');
  const unpacked = path.join(cache, 'usr/bin/promtool');
  if (existsSync(unpacked)) return unpacked;
  const hasApt = spawnSync('apt-get', ['--version'], { stdio: 'ignore' }).status === 0;
  if (!hasApt) {
    throw new Error('promtool not found: install Prometheus (its promtool) or put promtool on PATH');
  }
  mkdirSync(cache, { recursive: true });
  process.stdout.write('promtool: downloading Debian\'s prometheus package (not installing it)\n');
  const download = () => spawnSync('apt-get', ['download', 'prometheus'], { cwd: cache, stdio: ['ignore', 'inherit', 'inherit'] }).status === 0;
  // A fresh machine may have no package lists yet.
  if (!download() && !(spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit' }).status === 0 && download())) {
    throw new Error('apt-get download prometheus failed');
  }
  const deb = readdirSync(cache).find((file) => file.startsWith('prometheus_') && file.endsWith('.deb'));
  if (!deb) throw new Error('apt-get download prometheus left no .deb');
  execFileSync('dpkg-deb', ['-x', path.join(cache, deb), cache]);
  rmSync(path.join(cache, deb));
  return unpacked;
}
