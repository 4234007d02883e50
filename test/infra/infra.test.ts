/**
 * Lints infra/ where no Docker engine runs: the compose file against the local cluster's
 * configuration (infra/local-cluster.ts) and the apps' config schemas (their variables' names), nginx's round robin and
 * websocket settings, Prometheus targets, the Grafana dashboard's metric names against the code,
 * and the Dockerfile's stages. Reads files only: no network, no containers.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { ENV_VARIABLES, loadConfig } from '@chat/gateway';
import { SERVER_BATCH_MAX_BODY_BYTES } from '@chat/protocol';
import { WORKER_ENV_VARIABLES, loadWorkerConfig } from '@chat/worker';

/* eslint-disable @typescript-eslint/no-explicit-any */
type Any = any;

const root = fileURLToPath(new URL('../..', import.meta.url));
const read = (file: string) => readFileSync(path.join(root, file), 'utf8');

const compose = parseYaml(read('infra/docker-compose.yml'), { merge: true }) as Any;
const services = compose.services as Record<string, Any>;
const localCluster = read('infra/local-cluster.ts');
const packageJson = JSON.parse(read('package.json')) as Any;

const gatewayVariables = new Set(ENV_VARIABLES);
const workerVariables = new Set(WORKER_ENV_VARIABLES);

/** The keys of the env object literal in local-cluster.ts that starts at `marker`. */
function localClusterEnv(marker: string): string[] {
  const start = localCluster.indexOf(marker);
  expect(start, marker).toBeGreaterThan(-1);
  const rest = localCluster.slice(start);
  const end = /\}[);]/.exec(rest)!.index;
  return [...rest.slice(0, end).matchAll(/\b([A-Z][A-Z0-9_]+):/g)].map((match) => match[1]!);
}

describe('infra/docker-compose.yml', () => {
  it('has postgres 15, redis 7 with noeviction and AOF, a one-shot migration, two gateways, the worker and nginx', () => {
    expect(services.postgres.image).toMatch(/^postgres:15\b/);
    expect(services.redis.image).toMatch(/^redis:7\b/);
    const redisCommand = (services.redis.command as string[]).join(' ');
    expect(redisCommand).toContain('--maxmemory-policy noeviction');
    expect(redisCommand).toContain('--appendonly yes');
    expect(services.migrate.build.target).toBe('migrate');
    expect(services.migrate.restart).toBe('no');
    for (const name of ['gateway-a', 'gateway-b', 'worker']) {
      expect(services[name].build).toMatchObject({ context: '..', dockerfile: 'infra/Dockerfile' });
      expect(services[name].depends_on.migrate.condition).toBe('service_completed_successfully');
      expect(services[name].depends_on.redis.condition).toBe('service_healthy');
      expect(services[name].read_only).toBe(true);
    }
    expect(services['gateway-a'].build.target).toBe('gateway');
    expect(services['gateway-b'].build.target).toBe('gateway');
    expect(services.worker.build.target).toBe('worker');
    expect(services.nginx.ports).toEqual(['127.0.0.1:${NGINX_PORT:-8080}:8080']);
  });

  it('publishes every port on 127.0.0.1 only, and has no JWT secret of its own', () => {
    const published = Object.entries(services).flatMap(([name, service]) =>
      ((service.ports ?? []) as string[]).map((port) => `${name} ${port}`),
    );
    expect(published.length).toBeGreaterThanOrEqual(5); // postgres, redis, nginx, prometheus, grafana
    for (const port of published) expect(port).toMatch(/^\S+ 127\.0\.0\.1:/);
    for (const name of ['gateway-a', 'gateway-b']) {
      // No default: compose refuses to start until infra/containers/ensure-env.sh wrote one.
      expect(services[name].environment.JWT_SECRET).toMatch(/^\$\{JWT_SECRET:\?[^}]+\}$/);
    }
  });

  it('generates the secret on first run into a git-ignored env file, and keeps it afterwards', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'chat-compose-env-'));
    try {
      const script = path.join(root, 'infra/containers/ensure-env.sh');
      const [first, second] = [path.join(dir, 'a.env'), path.join(dir, 'b.env')];
      execFileSync(script, [first]);
      const secret = /^JWT_SECRET=([0-9a-f]{64})$/m.exec(readFileSync(first, 'utf8'))?.[1];
      expect(secret).toBeDefined();
      expect(statSync(first).mode & 0o777).toBe(0o600);
      execFileSync(script, [first]);
      expect(readFileSync(first, 'utf8')).toContain(`JWT_SECRET=${secret}`);
      execFileSync(script, [second]);
      expect(readFileSync(second, 'utf8')).not.toContain(secret!);
      // The default file, infra/.env, is ignored by git.
      execFileSync('git', ['check-ignore', '-q', 'infra/.env'], { cwd: root });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('passes the same variables as the local cluster (infra/local-cluster.ts)', () => {
    const shared = localClusterEnv('const shared = {');
    const gatewayOnly = localClusterEnv('run(podName(index)');
    const workerOnly = localClusterEnv("run('worker'");
    expect(shared).toEqual(['DATABASE_URL', 'REDIS_URL', 'REDIS_PREFIX', 'JWT_SECRET', 'LOG_LEVEL']);
    expect(gatewayOnly).toEqual(expect.arrayContaining(['PORT', 'HOST', 'POD_NAME', 'AUTH_DEV_LOGIN', 'CORS_ORIGINS']));
    for (const name of ['gateway-a', 'gateway-b']) {
      const env = services[name].environment;
      expect(Object.keys(env)).toEqual(expect.arrayContaining([...shared, ...gatewayOnly]));
      expect(env.POD_NAME).toBe(name);
      expect(env.AUTH_DEV_LOGIN).toBe('true'); // as in `pnpm start`
      expect(env.REDIS_PREFIX).toMatch(/:-chat}$/);
    }
    // The worker gets the shared variables it reads (not JWT_SECRET: it verifies no tokens).
    expect(workerOnly).toEqual(['POD_NAME', 'METRICS_HOST']);
    const workerShared = shared.filter((name) => workerVariables.has(name));
    expect(workerShared).toEqual(['DATABASE_URL', 'REDIS_URL', 'REDIS_PREFIX', 'LOG_LEVEL']);
    expect(Object.keys(services.worker.environment)).toEqual(expect.arrayContaining([...workerShared, ...workerOnly]));
    expect(services.worker.environment.POD_NAME).toBe('worker');
    // `pnpm start` keeps the worker's /metrics on loopback, as its gateways; compose opens it to
    // the compose network, where Prometheus scrapes it.
    expect(localCluster).toMatch(/run\('worker'[^\n]*METRICS_HOST: host\b/);
    expect(services.worker.environment.METRICS_HOST).toBe('0.0.0.0');
    expect(services.migrate.environment.DATABASE_URL).toBe(services.worker.environment.DATABASE_URL);
  });

  it('sets only variables the apps read', () => {
    const known = (variables: Set<string>) => (name: string) => variables.has(name);
    for (const name of ['gateway-a', 'gateway-b']) {
      expect(Object.keys(services[name].environment).filter((v) => !known(gatewayVariables)(v))).toEqual([]);
    }
    expect(Object.keys(services.worker.environment).filter((v) => !known(workerVariables)(v))).toEqual([]);
    // The k8s ConfigMaps too (generated from env files: KEY=value lines, `#` comments).
    const keysOf = (file: string) =>
      read(file)
        .split('\n')
        .filter((line) => line !== '' && !line.startsWith('#'))
        .map((line) => line.slice(0, line.indexOf('=')));
    const gatewayKeys = keysOf('k8s/base/gateway-config.env');
    const workerKeys = keysOf('k8s/base/worker-config.env');
    expect(gatewayKeys).toContain('REDIS_PREFIX');
    expect(workerKeys).toContain('REDIS_PREFIX');
    expect(gatewayKeys.filter((v) => !known(gatewayVariables)(v))).toEqual([]);
    expect(workerKeys.filter((v) => !known(workerVariables)(v))).toEqual([]);
  });

  it('sets values the apps accept (compose interpolation as up.sh leaves it: defaults, a generated JWT_SECRET)', () => {
    const interpolate = (env: Record<string, string>) =>
      Object.fromEntries(
        Object.entries(env).map(([name, value]) => [
          name,
          String(value)
            .replace(/\$\{[A-Z_]+:-([^}]*)\}/g, '$1')
            .replace(/\$\{JWT_SECRET:\?[^}]*\}/, 'f'.repeat(64)),
        ]),
      );
    for (const name of ['gateway-a', 'gateway-b']) {
      const env = interpolate(services[name].environment);
      expect(JSON.stringify(env), name).not.toContain('${');
      expect(() => loadConfig(env), name).not.toThrow();
    }
    expect(() => loadWorkerConfig(interpolate(services.worker.environment))).not.toThrow();
  });

  it('gives the gateways a stop grace period above SHUTDOWN_TIMEOUT_MS (and the drain window)', () => {
    const seconds = (value: string) => Number(/^(\d+)s$/.exec(value)![1]);
    for (const name of ['gateway-a', 'gateway-b']) {
      const env = services[name].environment;
      expect(seconds(services[name].stop_grace_period) * 1000).toBeGreaterThan(Number(env.SHUTDOWN_TIMEOUT_MS));
      expect(Number(env.SHUTDOWN_TIMEOUT_MS)).toBeGreaterThan(Number(env.DRAIN_WINDOW_MS));
    }
    expect(seconds(services.worker.stop_grace_period) * 1000).toBeGreaterThan(Number(services.worker.environment.SHUTDOWN_TIMEOUT_MS));
  });
});

describe('infra/nginx.conf', () => {
  const conf = read('infra/nginx.conf');
  const directives = conf.replace(/#.*$/gm, '');

  it('round-robins both gateways on one port, without stickiness', () => {
    const upstream = /upstream gateways \{([^}]*)\}/.exec(directives)![1]!;
    const servers = [...upstream.matchAll(/server\s+([\w.-]+):(\d+)/g)].map((m) => `${m[1]}:${m[2]}`);
    expect(servers).toEqual(['gateway-a:3000', 'gateway-b:3000']);
    for (const server of ['gateway-a', 'gateway-b']) expect(services[server].environment.PORT).toBe('3000');
    expect(upstream).not.toMatch(/\b(ip_hash|hash|sticky|least_conn|random)\b/);
    expect(directives).toMatch(/listen 8080;/);
    expect(conf).toMatch(/No stickiness/);
    expect(conf).toMatch(/websocket transport only/);
  });

  it('takes a body as large as the gateways accept, so that a too large one gets their 413', () => {
    // nginx's own 413 is an HTML page; a full server API batch (PROTOCOL §17) is up to 1,600 KiB.
    const [, amount, unit] = /client_max_body_size (\d+)([kKmM]?);/.exec(directives)!;
    const bytes = Number(amount) * ({ '': 1, k: 1024, m: 1024 * 1024 } as Record<string, number>)[unit!.toLowerCase()]!;
    expect(bytes).toBeGreaterThanOrEqual(SERVER_BATCH_MAX_BODY_BYTES);
  });

  it('passes websocket upgrades and allows an hour between frames', () => {
    expect(directives).toMatch(/proxy_http_version 1\.1;/);
    expect(directives).toMatch(/proxy_set_header Upgrade \$http_upgrade;/);
    expect(directives).toMatch(/proxy_set_header Connection \$connection_upgrade;/);
    expect(directives).toMatch(/proxy_read_timeout 3600s;/);
    expect(directives).toMatch(/proxy_send_timeout 3600s;/);
  });
});

describe('infra/prometheus.yml and infra/grafana/dashboard.json', () => {
  const prometheus = parseYaml(read('infra/prometheus.yml')) as Any;
  const dashboard = JSON.parse(read('infra/grafana/dashboard.json')) as Any;
  const targets = (job: string): string[] =>
    prometheus.scrape_configs.find((c: Any) => c.job_name === job).static_configs.flatMap((s: Any) => s.targets);

  it('scrapes /metrics of both gateways and the worker, at their compose addresses', () => {
    expect(targets('chat-gateway')).toEqual(['gateway-a:3000', 'gateway-b:3000']);
    expect(targets('chat-worker')).toEqual([`worker:${services.worker.environment.METRICS_PORT}`]);
    for (const config of prometheus.scrape_configs) expect(config.metrics_path).toBe('/metrics');
  });

  it('has the panels asked for, on job names that exist', () => {
    const titles: string[] = dashboard.panels.map((p: Any) => p.title);
    for (const wanted of [
      /connected sockets/i, /messages persisted/i, /ack latency.*p50.*p99/i, /persist batch size/i,
      /event-loop lag/i, /errors by code/i, /queue depth/i, /rooms expired/i,
    ]) {
      expect(titles.some((title) => wanted.test(title)), String(wanted)).toBe(true);
    }
    const variables = Object.fromEntries(dashboard.templating.list.map((v: Any) => [v.name, v.query]));
    expect(variables.gateway_job).toBe('chat-gateway');
    expect(variables.worker_job).toBe('chat-worker');
  });

  it('queries only metric families the apps export', () => {
    const gatewayMetrics = read('apps/gateway/src/metrics.ts');
    const exprs: string[] = dashboard.panels.flatMap((p: Any) => p.targets.map((t: Any) => t.expr));
    const families = new Set(
      exprs.flatMap((expr) => [...expr.matchAll(/\b((?:chat|nodejs)_[a-z0-9_]+)/g)].map((m) => m[1]!.replace(/_(bucket|sum|count)$/, ''))),
    );
    expect(families.size).toBeGreaterThan(5);
    const workerSource = readdirSync(path.join(root, 'apps/worker/src'), { recursive: true, encoding: 'utf8' })
      .filter((file) => file.endsWith('.ts'))
      .map((file) => read(path.join('apps/worker/src', file)))
      .join('\n');
    const workerHasMetrics = workerSource.includes('prom-client');
    for (const family of families) {
      if (family.startsWith('nodejs_')) continue; // prom-client's collectDefaultMetrics
      if (family.startsWith('chat_worker_')) {
        if (workerHasMetrics) expect(workerSource, family).toContain(`'${family}'`);
        else console.warn(`infra: dashboard metric ${family} awaits the worker's /metrics`);
        continue;
      }
      expect(gatewayMetrics, family).toContain(`'${family}'`);
    }
  });
});

describe('infra/Dockerfile', () => {
  const dockerfile = read('infra/Dockerfile');
  const build = read('infra/build.ts');

  it('builds on node 20 bookworm-slim (engines), with the pinned pnpm', () => {
    expect(dockerfile).toMatch(/^ARG NODE_IMAGE=node:20-bookworm-slim$/m);
    expect(packageJson.engines.node).toMatch(/^>=20\./);
    const pnpmVersion = String(packageJson.packageManager).replace('pnpm@', '');
    expect(dockerfile).toContain(`npm i -g pnpm@${pnpmVersion}`);
    expect(dockerfile).toMatch(/pnpm install --offline --frozen-lockfile/);
  });

  it('has the stages gateway, worker and migrate, each running its bundle as a non-root user', () => {
    const stages = Object.fromEntries(
      dockerfile.split(/^FROM /m).slice(1).map((stage) => [/^\S+ AS (\S+)/.exec(stage)![1]!, stage]),
    );
    expect(Object.keys(stages)).toEqual(['build', 'runtime', 'migrate', 'worker', 'gateway']);
    expect(stages.runtime).toMatch(/^USER 1000:1000$/m);
    expect(stages.runtime).toMatch(/COPY --from=build --chown=0:0 \/src\/dist \.\/dist/);
    for (const name of ['gateway', 'worker', 'migrate']) {
      expect(stages[name]).toMatch(/^runtime AS/);
      expect(stages[name]).toContain(`CMD ["node", "--enable-source-maps", "dist/${name}.mjs"]`);
      expect(stages[name]).not.toMatch(/^USER /m);
      expect(build).toMatch(new RegExp(`\\b${name}: '[^']+\\.ts'`));
    }
    expect(stages.gateway).toMatch(/EXPOSE 3000/);
  });

  it('.dockerignore keeps node_modules, dist and git out of the build context', () => {
    const ignore = read('.dockerignore').split('\n');
    for (const entry of ['**/node_modules', '**/dist', '.git']) expect(ignore).toContain(entry);
  });
});
