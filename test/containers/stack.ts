/**
 * One compose project of infra/docker-compose.yml for the container test: a unique project name,
 * free loopback ports, a generated JWT_SECRET, the local base images and the test's own image
 * tags and settings layered on top. `down()` removes its containers, networks and volumes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify as stringifyYaml } from 'yaml';
import { must, run, type Result } from './shell.ts';

export const root = fileURLToPath(new URL('../..', import.meta.url));

export type Service = 'postgres' | 'redis' | 'migrate' | 'gateway-a' | 'gateway-b' | 'worker' | 'nginx';
export const appServices = ['migrate', 'gateway-a', 'gateway-b', 'worker'] as const;

/** Tags the test builds from infra/Dockerfile (kept between runs as a layer cache). */
export const appImages = {
  gateway: 'chat-gateway:containers-test',
  worker: 'chat-worker:containers-test',
  migrate: 'chat-migrate:containers-test',
} as const;

/** `docker compose` when the v2 plugin is installed, else docker-compose v1. */
export async function composeCommand(): Promise<string[] | null> {
  if ((await run('docker', ['compose', 'version'], { timeoutMs: 15_000 })).code === 0) return ['docker', 'compose'];
  if ((await run('docker-compose', ['version'], { timeoutMs: 15_000 })).code === 0) return ['docker-compose'];
  return null;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export interface StackSettings {
  /** Gateways' DRAIN_WINDOW_MS (the compose file's 10 s, shortened to keep the test quick). */
  drainWindowMs: number;
}

export class Stack {
  readonly project = `chatct${randomBytes(4).toString('hex')}`;
  nginxPort = 0;
  private readonly dir = mkdtempSync(path.join(tmpdir(), 'chat-containers-'));
  private files: string[] = [];

  constructor(private readonly compose: string[]) {}

  /** Writes the env file and the test's compose override; picks the loopback ports. */
  async prepare(settings: StackSettings): Promise<void> {
    this.nginxPort = await freePort();
    const env = {
      JWT_SECRET: randomBytes(32).toString('hex'),
      NGINX_PORT: this.nginxPort,
      POSTGRES_PORT: await freePort(),
      REDIS_PORT: await freePort(),
      CORS_ORIGINS: `http://127.0.0.1:${this.nginxPort}`,
    };
    const envFile = path.join(this.dir, 'test.env');
    writeFileSync(envFile, Object.entries(env).map(([k, v]) => `${k}=${v}`).join('\n') + '\n', { mode: 0o600 });
    const gatewayEnv = {
      // A steady stream of sends, far above the spec's 30 a minute, so the failover has traffic.
      MESSAGE_RATE_LIMIT_PER_MINUTE: '100000',
      DRAIN_WINDOW_MS: String(settings.drainWindowMs),
    };
    const override = {
      services: {
        migrate: { image: appImages.migrate },
        'gateway-a': { image: appImages.gateway, environment: gatewayEnv },
        'gateway-b': { image: appImages.gateway, environment: gatewayEnv },
        worker: { image: appImages.worker },
      },
    };
    const overrideFile = path.join(this.dir, 'test-override.yml');
    writeFileSync(overrideFile, stringifyYaml(override));
    this.files = [
      '--env-file', envFile,
      '-f', path.join(root, 'infra/docker-compose.yml'),
      '-f', path.join(root, 'infra/containers/local-bases.yml'),
      '-f', overrideFile,
    ];
  }

  /** Runs compose on this project. */
  composeRun(args: string[], timeoutMs = 180_000): Promise<Result> {
    const [command, ...prefix] = this.compose;
    return run(command!, [...prefix, '-p', this.project, ...this.files, ...args], { cwd: root, timeoutMs });
  }

  async up(): Promise<void> {
    const result = await this.composeRun(['up', '-d', '--no-build'], 300_000);
    if (result.code !== 0) throw new Error(`compose up failed (${result.code}):\n${(result.stdout + result.stderr).trim().split('\n').slice(-20).join('\n')}`);
  }

  /** The container of a service (running or not), by compose's labels (v1 and v2 set them). */
  async id(service: Service): Promise<string> {
    const out = await must('docker', ['ps', '-a', '-q', '--filter', `label=com.docker.compose.project=${this.project}`,
      '--filter', `label=com.docker.compose.service=${service}`], { timeoutMs: 30_000 });
    const id = out.trim().split('\n')[0];
    if (!id) throw new Error(`no container for ${service}`);
    return id;
  }

  async inspect(service: Service): Promise<ContainerInfo> {
    const out = await must('docker', ['inspect', await this.id(service)], { timeoutMs: 30_000 });
    return (JSON.parse(out) as ContainerInfo[])[0]!;
  }

  /** Runs a Node.js script inside the service's container (the images hold node, nothing else). */
  async node(service: Service, script: string, timeoutMs = 20_000): Promise<Result> {
    return run('docker', ['exec', await this.id(service), 'node', '-e', script], { timeoutMs });
  }

  /** GET on the container's own loopback (ports that are not published, e.g. /metrics). */
  async fetchInside(service: Service, port: number, pathname: string): Promise<{ status: number; body: string }> {
    const script = `fetch('http://127.0.0.1:${port}${pathname}').then(async (r) => { process.stdout.write(r.status + '\\n' + await r.text()); }, (e) => { process.stdout.write('0\\n' + e.message); })`;
    const result = await this.node(service, script);
    if (result.code !== 0) return { status: 0, body: result.stderr };
    const newline = result.stdout.indexOf('\n');
    return { status: Number(result.stdout.slice(0, newline)), body: result.stdout.slice(newline + 1) };
  }

  private reaper: ChildProcess | null = null;

  /**
   * A detached watcher that runs `down` if this process dies without cleaning up (SIGKILL, a CI
   * timeout): left behind, containers with `restart: unless-stopped` come back with dockerd.
   * Bounded: it gives up after three hours.
   */
  startReaper(): void {
    const [command, ...prefix] = this.compose;
    const down = [command!, ...prefix, '-p', this.project, ...this.files, 'down', '-v', '--remove-orphans', '-t', '10'];
    const quoted = down.map((part) => `'${part.replace(/'/g, `'\\''`)}'`).join(' ');
    const script = `for i in $(seq 1 10800); do kill -0 ${process.pid} 2>/dev/null || break; sleep 1; done; ` +
      `kill -0 ${process.pid} 2>/dev/null || { ${quoted} >/dev/null 2>&1; rm -rf '${this.dir}'; }`;
    this.reaper = spawn('sh', ['-c', script], { cwd: root, detached: true, stdio: 'ignore' });
    this.reaper.unref();
  }

  stopReaper(): void {
    if (this.reaper?.pid) {
      try {
        process.kill(this.reaper.pid, 'SIGTERM');
      } catch {
        // already gone
      }
    }
    this.reaper = null;
  }

  /** Everything of this project: containers, networks, volumes (the images stay). */
  async down(): Promise<Result> {
    return this.composeRun(['down', '-v', '--remove-orphans', '-t', '10'], 180_000);
  }

  /** What is left of the project after `down` (should be nothing). */
  async leftovers(): Promise<string[]> {
    const filter = ['--filter', `label=com.docker.compose.project=${this.project}`];
    const [containers, networks, volumes] = await Promise.all([
      run('docker', ['ps', '-a', '-q', ...filter]),
      run('docker', ['network', 'ls', '-q', ...filter]),
      run('docker', ['volume', 'ls', '-q', ...filter]),
    ]);
    return [
      ...lines(containers.stdout).map((id) => `container ${id}`),
      ...lines(networks.stdout).map((id) => `network ${id}`),
      ...lines(volumes.stdout).map((id) => `volume ${id}`),
    ];
  }

  removeFiles(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

const lines = (text: string) => text.split('\n').map((line) => line.trim()).filter(Boolean);

export interface ContainerInfo {
  Id: string;
  Name: string;
  Config: { User: string; Image: string };
  HostConfig: { ReadonlyRootfs: boolean; PortBindings: Record<string, { HostIp: string; HostPort: string }[] | null> | null };
  State: { Status: string; Running: boolean; ExitCode: number; OOMKilled: boolean; StartedAt: string; FinishedAt: string; Health?: { Status: string } };
  RestartCount: number;
}
