/**
 * Debian's nginx binary, running infra/nginx.conf (rendered for a test) in front of gateway
 * processes on loopback ports.
 *
 * The binary comes from PATH or /usr/sbin, or else from Debian's `nginx` package, downloaded
 * (not installed: no service is set up, nothing listens on port 80) and unpacked under
 * node_modules/.cache/nginx, as test/alerts/run.ts does for promtool.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sleep, spawnProcess, type TestProcess } from '@chat/testing';

const root = fileURLToPath(new URL('../..', import.meta.url));

const runs = (binary: string) => spawnSync(binary, ['-v'], { stdio: 'ignore' }).status === 0;

/** The nginx binary to run, downloading Debian's package once if the machine has none. */
export function findNginx(): string {
  for (const candidate of ['nginx', '/usr/sbin/nginx']) if (runs(candidate)) return candidate;
  const cache = path.join(root, 'node_modules/.cache/nginx');
  const unpacked = path.join(cache, 'usr/sbin/nginx');
  if (existsSync(unpacked) && runs(unpacked)) return unpacked;
  if (spawnSync('apt-get', ['--version'], { stdio: 'ignore' }).status !== 0) {
    throw new Error('nginx not found: install it (Debian: apt-get install nginx) or put it on PATH');
  }
  mkdirSync(cache, { recursive: true });
  const download = () => spawnSync('apt-get', ['download', 'nginx'], { cwd: cache, stdio: 'ignore' }).status === 0;
  // A fresh machine may have no package lists yet.
  if (!download() && !(spawnSync('apt-get', ['update', '-qq'], { stdio: 'ignore' }).status === 0 && download())) {
    throw new Error('apt-get download nginx failed: install nginx (apt-get install nginx) or put it on PATH');
  }
  const deb = readdirSync(cache).find((file) => file.startsWith('nginx_') && file.endsWith('.deb'));
  if (!deb) throw new Error('apt-get download nginx left no .deb');
  execFileSync('dpkg-deb', ['-x', path.join(cache, deb), cache]);
  rmSync(path.join(cache, deb));
  if (!runs(unpacked)) throw new Error(`${unpacked} does not run`);
  return unpacked;
}

/** Replaces exactly one match of `pattern`: a reshaped nginx.conf fails loudly, not silently. */
function replaceOnce(text: string, pattern: RegExp, replacement: string): string {
  const matches = text.match(new RegExp(pattern.source, `${pattern.flags.replace('g', '')}g`));
  if (matches?.length !== 1) throw new Error(`nginx.conf: expected one match of ${pattern}, found ${matches?.length ?? 0}`);
  return text.replace(pattern, replacement);
}

/**
 * infra/nginx.conf with only what a test must change: the gateways' addresses, a loopback
 * port, one worker (round robin is per worker), the pid, logs and temporary files in `dir`,
 * in the foreground, as the current user. Everything else (log format, headers, timeouts) is
 * the file's own.
 */
export function renderNginxConf(source: string, options: { dir: string; port: number; upstreams: string[] }): string {
  const { dir } = options;
  let conf = source;
  conf = replaceOnce(conf, /^worker_processes .*;$/m, 'worker_processes 1;');
  const user = userInfo();
  // As root, nginx would switch its workers to `nobody`; any other user cannot switch at all.
  const runAs = user.uid === 0 ? 'user root;\n' : '';
  conf = replaceOnce(conf, /^pid .*;$/m, `${runAs}daemon off;\npid ${dir}/nginx.pid;`);
  conf = replaceOnce(conf, /access_log \/dev\/stdout\b/, `access_log ${dir}/access.log`);
  conf = replaceOnce(conf, /error_log \/dev\/stderr\b/, `error_log ${dir}/error.log`);
  for (const kind of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) {
    conf = replaceOnce(conf, new RegExp(`^(\\s*)${kind}_temp_path .*;$`, 'm'), `$1${kind}_temp_path ${dir}/${kind};`);
  }
  conf = replaceOnce(conf, /^(\s*)listen \d+;$/m, `$1listen 127.0.0.1:${options.port};`);
  const upstream = /(upstream gateways \{)([^}]*)(\})/.exec(conf);
  if (!upstream) throw new Error('nginx.conf: no `upstream gateways` block');
  const servers = [...upstream[2]!.matchAll(/server\s+[\w.-]+:\d+/g)];
  if (servers.length !== options.upstreams.length) {
    throw new Error(`nginx.conf: ${servers.length} upstream servers, the test has ${options.upstreams.length} gateways`);
  }
  let index = 0;
  const body = upstream[2]!.replace(/server\s+[\w.-]+:\d+/g, () => `server ${options.upstreams[index++]}`);
  return conf.replace(upstream[0], `${upstream[1]}${body}${upstream[3]}`);
}

export interface RunningNginx {
  url: string;
  dir: string;
  /** The configuration nginx runs, as rendered. */
  conf: string;
  accessLog(): string;
  errorLog(): string;
  /** Stops nginx (SIGQUIT, then SIGKILL) and removes its directory. */
  stop(): Promise<void>;
}

const readIfExists = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8') : '');

async function acceptsConnections(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.setTimeout(500);
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => (socket.destroy(), resolve(false)));
  });
}

/** Starts nginx on infra/nginx.conf in front of `upstreams` (host:port), on 127.0.0.1:`port`. */
export async function startNginx(options: { port: number; upstreams: string[] }): Promise<RunningNginx> {
  const binary = findNginx();
  const dir = mkdtempSync(path.join(tmpdir(), 'chat-nginx-'));
  const conf = renderNginxConf(readFileSync(path.join(root, 'infra/nginx.conf'), 'utf8'), { dir, ...options });
  const confFile = path.join(dir, 'nginx.conf');
  writeFileSync(confFile, conf);
  // -e: the log nginx writes before it has read the configuration (Debian's default is stderr).
  const proc: TestProcess = spawnProcess(binary, ['-p', `${dir}/`, '-c', confFile, '-e', `${dir}/startup.log`]);
  const stop = async () => {
    await proc.kill('SIGQUIT', 5000);
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 10_000;
  while (!(await acceptsConnections(options.port))) {
    if (Date.now() > deadline || proc.child.exitCode !== null) {
      const why = `${proc.output()}\n${readIfExists(path.join(dir, 'startup.log'))}\n${readIfExists(path.join(dir, 'error.log'))}`;
      await stop();
      throw new Error(`nginx did not start on 127.0.0.1:${options.port}:\n${why}`);
    }
    await sleep(50);
  }
  return {
    url: `http://127.0.0.1:${options.port}`,
    dir,
    conf,
    accessLog: () => readIfExists(path.join(dir, 'access.log')),
    errorLog: () => readIfExists(path.join(dir, 'error.log')),
    stop,
  };
}
