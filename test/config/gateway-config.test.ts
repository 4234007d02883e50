import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { ConfigError, loadConfig } from '@chat/gateway';
import { WEBHOOK_ENDPOINT_GRACE_MS } from '@chat/db';
import { loadWorkerConfig } from '@chat/worker';

const base = { JWT_SECRET: 'a-secret-of-at-least-sixteen-characters' };

describe('gateway configuration', () => {
  it('reads TRUST_PROXY as Fastify takes it, and trusts private networks by default', () => {
    expect(loadConfig(base).trustProxy).toEqual(['loopback', 'linklocal', 'uniquelocal']);
    expect(loadConfig({ ...base, TRUST_PROXY: 'false' }).trustProxy).toBe(false);
    expect(loadConfig({ ...base, TRUST_PROXY: 'true' }).trustProxy).toBe(true);
    expect(loadConfig({ ...base, TRUST_PROXY: '2' }).trustProxy).toBe(2);
    expect(loadConfig({ ...base, TRUST_PROXY: '10.0.0.0/8, 192.168.1.7' }).trustProxy).toEqual(['10.0.0.0/8', '192.168.1.7']);
  });

  it('refuses a SOCKET_MAX_QUEUED_BYTES too small to hold a burst', () => {
    expect(loadConfig(base).socketMaxQueuedBytes).toBe(1024 * 1024);
    expect(() => loadConfig({ ...base, SOCKET_MAX_QUEUED_BYTES: '1000' })).toThrow(ConfigError);
  });

  it("bounds the general pool's calls past the statement timeout: the batch deadline by default, never at or below it", () => {
    expect(loadConfig(base).databaseStallTimeoutMs).toBe(15_000);
    expect(loadConfig({ ...base, DATABASE_STATEMENT_TIMEOUT_MS: '2000' }).databaseStallTimeoutMs).toBe(9000);
    expect(loadConfig({ ...base, DATABASE_STALL_TIMEOUT_MS: '8000' }).databaseStallTimeoutMs).toBe(8000);
    // At or below it, a statement Postgres may still be running would replace the whole pool.
    expect(() => loadConfig({ ...base, DATABASE_STALL_TIMEOUT_MS: '5000' })).toThrow(/DATABASE_STALL_TIMEOUT_MS must exceed DATABASE_STATEMENT_TIMEOUT_MS/);
  });

  it('refuses a drain window the shutdown timeout would cut short', () => {
    expect(loadConfig({ ...base, DRAIN_WINDOW_MS: '20000', SHUTDOWN_TIMEOUT_MS: '40000' }).drainWindowMs).toBe(20_000);
    // SHUTDOWN_TIMEOUT_MS alone lowered below the default 10 s window: the drain never finished.
    for (const env of [{ SHUTDOWN_TIMEOUT_MS: '5000' }, { DRAIN_WINDOW_MS: '30000' }]) {
      expect(() => loadConfig({ ...base, ...env }), JSON.stringify(env)).toThrow(/DRAIN_WINDOW_MS must be below SHUTDOWN_TIMEOUT_MS/);
    }
  });

  it('requires an HS256 JWT_SECRET of at least 32 bytes (256 bits, as RFC 7518 asks of HS256 keys)', () => {
    expect(() => loadConfig({ JWT_SECRET: 'x'.repeat(31) })).toThrow(/JWT_SECRET/);
    expect(loadConfig({ JWT_SECRET: 'x'.repeat(32) }).jwt.secret).toBe('x'.repeat(32));
    // Bytes, not characters: 11 Hangul syllables are 33 bytes of UTF-8.
    expect(loadConfig({ JWT_SECRET: '가'.repeat(11) }).jwt.secret).toBe('가'.repeat(11));
    expect(() => loadConfig({ JWT_SECRET: '가'.repeat(10) })).toThrow(ConfigError);
  });

  it("refuses the example Secret's CHANGE-ME placeholder as JWT_SECRET, though it is long enough", () => {
    const example = parseYaml(readFileSync(fileURLToPath(new URL('../../k8s/base/secret.example.yaml', import.meta.url)), 'utf8'));
    const placeholder: string = example.stringData.JWT_SECRET;
    expect(Buffer.byteLength(placeholder)).toBeGreaterThanOrEqual(32);
    expect(() => loadConfig({ JWT_SECRET: placeholder })).toThrow(/JWT_SECRET is the example's CHANGE-ME placeholder/);
    // Whatever its case or trailing text; the message never echoes the value.
    for (const secret of [`change-me-${'x'.repeat(32)}`, ` CHANGE-ME${'x'.repeat(32)}`]) {
      expect(() => loadConfig({ JWT_SECRET: secret }), secret).toThrow(ConfigError);
      expect(() => loadConfig({ JWT_SECRET: secret })).not.toThrow(/x{32}/);
    }
    // Only a value that starts with it: a random secret may contain the letters.
    expect(loadConfig({ JWT_SECRET: `${'x'.repeat(32)}CHANGE-ME` }).jwt.secret).toBe(`${'x'.repeat(32)}CHANGE-ME`);
  });

  it("refuses a webhook endpoint's secret still set to a CHANGE-ME placeholder (worker)", () => {
    const endpoints = (secret: string) => JSON.stringify([{ id: 'crm', url: 'https://crm.example.com/hooks', secret }]);
    expect(loadWorkerConfig({ WEBHOOK_ENDPOINTS: endpoints('a-webhook-secret-of-some-length') }).webhooks.endpoints).toHaveLength(1);
    expect(() => loadWorkerConfig({ WEBHOOK_ENDPOINTS: endpoints('CHANGE-ME-to-a-random-secret') })).toThrow(/CHANGE-ME placeholder/);
    // The example Secret's own, applied as it is.
    const example = parseYaml(readFileSync(fileURLToPath(new URL('../../k8s/base/secret.example.yaml', import.meta.url)), 'utf8'));
    expect(() => loadWorkerConfig({ WEBHOOK_ENDPOINTS: example.stringData.WEBHOOK_ENDPOINTS })).toThrow(/CHANGE-ME placeholder/);
  });

  it("bounds the worker's Postgres calls past its statement timeout, never at or below it (worker)", () => {
    expect(loadWorkerConfig({}).databaseStallTimeoutMs).toBe(15_000);
    expect(loadWorkerConfig({ DATABASE_STALL_TIMEOUT_MS: '6000' }).databaseStallTimeoutMs).toBe(6000);
    for (const value of ['3000', '5000']) {
      expect(() => loadWorkerConfig({ DATABASE_STALL_TIMEOUT_MS: value }), value).toThrow(/DATABASE_STALL_TIMEOUT_MS: must exceed the worker's statement timeout/);
    }
  });

  it('refuses a webhook poll interval past a tenth of the endpoints\' grace (worker)', () => {
    // A replica names its endpoints only on the dispatch runs it takes: polled every 5 min, a
    // replica configured without them deleted them between two runs during a rolling update.
    expect(loadWorkerConfig({ WEBHOOK_POLL_INTERVAL_MS: String(WEBHOOK_ENDPOINT_GRACE_MS / 10) }).webhooks.pollIntervalMs).toBe(30_000);
    expect(() => loadWorkerConfig({ WEBHOOK_POLL_INTERVAL_MS: String(WEBHOOK_ENDPOINT_GRACE_MS) })).toThrow(/WEBHOOK_POLL_INTERVAL_MS/);
  });

  it('refuses a webhook endpoint URL that is no URL with the configuration error, not a TypeError (worker)', () => {
    const endpoints = (url: string) => JSON.stringify([{ id: 'crm', url, secret: 'a-webhook-secret-of-some-length' }]);
    for (const url of ['not a url', 'crm.example.com/hooks', 'ftp://crm.example.com/', 'https://user:pw@crm.example.com/']) {
      expect(() => loadWorkerConfig({ WEBHOOK_ENDPOINTS: endpoints(url) }), url).toThrow(ConfigError);
      expect(() => loadWorkerConfig({ WEBHOOK_ENDPOINTS: endpoints(url) }), url).toThrow(/WEBHOOK_ENDPOINTS\.0\.url: an http\(s\) URL without credentials/);
    }
  });

  it('refuses server API keys whose ids or hashes repeat, and a revocation naming no configured key', () => {
    const hash = (fill: string) => fill.repeat(64);
    expect(loadConfig({ ...base, SERVER_API_KEYS: `crm:${hash('a')},ops:${hash('b')}`, SERVER_API_KEYS_REVOKED: 'ops' }).serverApi).toMatchObject({
      keys: [{ id: 'crm' }, { id: 'ops' }],
      revokedKeyIds: ['ops'],
    });
    // One id for two keys: a call's id, its budget and its revocation would stand for either.
    expect(() => loadConfig({ ...base, SERVER_API_KEYS: `crm:${hash('a')},crm:${hash('b')}` })).toThrow(/SERVER_API_KEYS: each key id once; repeated: crm/);
    // One key under two ids (case of the hex aside): which id a call was made with would be a guess.
    expect(() => loadConfig({ ...base, SERVER_API_KEYS: `crm:${hash('a')},ops:${hash('A')}` })).toThrow(/SERVER_API_KEYS: each key once/);
    // A misspelt revocation would leave the key working: refused, by position (a key pasted
    // there by mistake looks like an id, and is not echoed).
    const pasted = `sk_${'f'.repeat(48)}`;
    for (const revoked of ['crm-backend', `crm_backend,${pasted}`]) {
      const load = () => loadConfig({ ...base, SERVER_API_KEYS: `crm_backend:${hash('a')}`, SERVER_API_KEYS_REVOKED: revoked });
      expect(load, revoked).toThrow(/SERVER_API_KEYS_REVOKED: every id must name a key of SERVER_API_KEYS; entry [12] names none/);
      expect(load, revoked).not.toThrow(new RegExp(`crm-backend|${pasted}`));
    }
  });

  it('requires an https: JWT_JWKS_URL unless NODE_ENV is development', () => {
    expect(loadConfig({ JWT_JWKS_URL: 'https://idp.example.com/.well-known/jwks.json' }).jwt.jwksUrl).toBe(
      'https://idp.example.com/.well-known/jwks.json',
    );
    for (const env of [{}, { NODE_ENV: 'production' }, { NODE_ENV: 'test' }]) {
      expect(() => loadConfig({ ...env, JWT_JWKS_URL: 'http://idp.example.com/jwks.json' }), JSON.stringify(env)).toThrow(/JWT_JWKS_URL/);
    }
    expect(loadConfig({ NODE_ENV: 'development', JWT_JWKS_URL: 'http://127.0.0.1:8080/jwks.json' }).jwt.jwksUrl).toBe(
      'http://127.0.0.1:8080/jwks.json',
    );
    // Never another scheme, even in development.
    expect(() => loadConfig({ NODE_ENV: 'development', JWT_JWKS_URL: 'file:///etc/jwks.json' })).toThrow(/JWT_JWKS_URL/);
  });

  it('reads JWT_MAX_LIFETIME_SECONDS, off by default', () => {
    expect(loadConfig(base).jwt.maxLifetimeSeconds).toBeUndefined();
    expect(loadConfig({ ...base, JWT_MAX_LIFETIME_SECONDS: '3600' }).jwt.maxLifetimeSeconds).toBe(3600);
    expect(loadConfig({ ...base, JWT_MAX_LIFETIME_SECONDS: '0' }).jwt.maxLifetimeSeconds).toBeUndefined();
    for (const bad of ['-1', '1.5', 'day']) expect(() => loadConfig({ ...base, JWT_MAX_LIFETIME_SECONDS: bad }), bad).toThrow(ConfigError);
  });

  it('puts the bus on REDIS_URL, or on the Redis Cluster REDIS_BUS_CLUSTER_NODES names', () => {
    expect(loadConfig({ ...base, REDIS_URL: 'redis://10.0.0.5:6380' }).bus).toEqual({ kind: 'standalone', url: 'redis://10.0.0.5:6380' });
    expect(loadConfig({ ...base, REDIS_BUS_CLUSTER_NODES: '' }).bus.kind).toBe('standalone');
    expect(loadConfig({ ...base, REDIS_BUS_CLUSTER_NODES: ' 127.0.0.1:7000, bus-1.cache.svc:7001 ,[::1]:7002' }).bus).toEqual({
      kind: 'cluster',
      nodes: [
        { host: '127.0.0.1', port: 7000 },
        { host: 'bus-1.cache.svc', port: 7001 },
        { host: '::1', port: 7002 },
      ],
    });
    for (const bad of ['127.0.0.1', '127.0.0.1:0', 'host:70000', 'redis://h:1', 'a:1,b']) {
      expect(() => loadConfig({ ...base, REDIS_BUS_CLUSTER_NODES: bad }), bad).toThrow(ConfigError);
    }
    // The worker reads the same variable the same way: both must find the same bus.
    expect(loadWorkerConfig({ REDIS_BUS_CLUSTER_NODES: '127.0.0.1:7000' }).bus).toEqual({ kind: 'cluster', nodes: [{ host: '127.0.0.1', port: 7000 }] });
  });

  it('finds the state Redis (and a bus on it) through Sentinel when REDIS_SENTINELS names sentinels', () => {
    expect(loadConfig(base).state).toEqual({ kind: 'standalone', url: 'redis://127.0.0.1:6379' });
    const env = { REDIS_URL: 'redis://:pw@ignored:6379/2', REDIS_SENTINELS: 'sentinel-0.redis:26379, sentinel-1.redis:26379', REDIS_SENTINEL_NAME: 'chat' };
    const sentinel = { nodes: [{ host: 'sentinel-0.redis', port: 26379 }, { host: 'sentinel-1.redis', port: 26379 }], name: 'chat', password: null };
    expect(loadConfig({ ...base, ...env }).state).toEqual({ kind: 'standalone', url: env.REDIS_URL, sentinel });
    expect(loadConfig({ ...base, ...env }).bus).toEqual({ kind: 'standalone', url: env.REDIS_URL, sentinel });
    expect(loadConfig({ ...base, ...env, REDIS_SENTINEL_PASSWORD: 'spw' }).state).toMatchObject({ sentinel: { password: 'spw' } });
    // A Redis Cluster bus stays a cluster: only the state goes through Sentinel.
    expect(loadConfig({ ...base, ...env, REDIS_BUS_CLUSTER_NODES: '127.0.0.1:7000' }).bus.kind).toBe('cluster');
    // The worker reads the same variables the same way.
    expect(loadWorkerConfig({ ...env }).state).toEqual({ kind: 'standalone', url: env.REDIS_URL, sentinel });
    // TLS (rediss:) goes to the sentinels and the master alike.
    expect(loadConfig({ ...base, ...env, REDIS_URL: 'rediss://h:6379' }).state).toEqual({ kind: 'standalone', url: 'rediss://h:6379', sentinel, tls: {} });
    // Without the master's name, or with a bad list, nothing starts.
    expect(() => loadConfig({ ...base, REDIS_SENTINELS: 'sentinel-0.redis:26379' })).toThrow(/REDIS_SENTINEL/);
    expect(() => loadWorkerConfig({ REDIS_SENTINELS: 'sentinel-0.redis:26379' })).toThrow(/REDIS_SENTINEL/);
    expect(() => loadConfig({ ...base, ...env, REDIS_SENTINELS: 'sentinel-0.redis' })).toThrow(ConfigError);
    expect(() => loadConfig({ ...base, ...env, REDIS_SENTINEL_NAME: 'a b' })).toThrow(ConfigError);
    // Blank (a ConfigMap's ""): unset.
    expect(loadConfig({ ...base, REDIS_SENTINELS: '', REDIS_SENTINEL_NAME: '', REDIS_SENTINEL_PASSWORD: '' }).state).toEqual({ kind: 'standalone', url: 'redis://127.0.0.1:6379' });
  });

  it('puts the state on a Redis Cluster when REDIS_STATE_CLUSTER_NODES names its nodes, its multi-key state under one hash tag', () => {
    expect(loadConfig(base).stateKeyPrefix).toBe('chat');
    const env = { REDIS_STATE_CLUSTER_NODES: '10.0.0.1:7000, 10.0.0.2:7000', REDIS_PREFIX: 'chat-prod' };
    const cluster = { kind: 'cluster', nodes: [{ host: '10.0.0.1', port: 7000 }, { host: '10.0.0.2', port: 7000 }] };
    expect(loadConfig({ ...base, ...env }).state).toEqual(cluster);
    expect(loadConfig({ ...base, ...env }).stateKeyPrefix).toBe('{chat-prod}');
    expect(loadWorkerConfig(env).state).toEqual(cluster);
    expect(loadWorkerConfig(env).stateKeyPrefix).toBe('{chat-prod}');
    // The bus does not follow: it is REDIS_URL unless REDIS_BUS_CLUSTER_NODES says otherwise.
    expect(loadConfig({ ...base, ...env }).bus).toEqual({ kind: 'standalone', url: 'redis://127.0.0.1:6379' });
    expect(loadConfig({ ...base, REDIS_STATE_CLUSTER_NODES: '' }).state.kind).toBe('standalone');
    // REDIS_URL's credentials are the cluster nodes' (AUTH), for the state and the bus alike.
    const secured = { ...env, REDIS_URL: 'redis://chat:p%40ss@ignored:6379', REDIS_BUS_CLUSTER_NODES: '10.0.0.3:7000' };
    expect(loadConfig({ ...base, ...secured }).state).toEqual({ ...cluster, username: 'chat', password: 'p@ss' });
    expect(loadConfig({ ...base, ...secured }).bus).toEqual({ kind: 'cluster', nodes: [{ host: '10.0.0.3', port: 7000 }], username: 'chat', password: 'p@ss' });
    expect(loadWorkerConfig(secured).state).toEqual({ ...cluster, username: 'chat', password: 'p@ss' });
    expect(() => loadConfig({ ...base, REDIS_STATE_CLUSTER_NODES: '10.0.0.1' })).toThrow(/REDIS_STATE_CLUSTER_NODES/);
    const sentinel = { REDIS_SENTINELS: 'sentinel-0.redis:26379', REDIS_SENTINEL_NAME: 'chat' };
    expect(() => loadConfig({ ...base, ...env, ...sentinel })).toThrow(/REDIS_STATE_CLUSTER_NODES/);
    expect(() => loadWorkerConfig({ ...env, ...sentinel })).toThrow(/REDIS_STATE_CLUSTER_NODES/);
  });

  it('speaks TLS to every Redis with a rediss: REDIS_URL, trusting REDIS_TLS_CA_FILE and presenting REDIS_TLS_CERT_FILE/KEY_FILE', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'chat-tls-config-'));
    try {
      const pem = (name: string, kind: string) => {
        const file = path.join(dir, name);
        writeFileSync(file, `-----BEGIN ${kind}-----\n${name}-body\n-----END ${kind}-----\n`);
        return file;
      };
      const files = { REDIS_TLS_CA_FILE: pem('ca.crt', 'CERTIFICATE'), REDIS_TLS_CERT_FILE: pem('client.crt', 'CERTIFICATE'), REDIS_TLS_KEY_FILE: pem('client.key', 'PRIVATE KEY') };
      const tls = { ca: readFileSync(files.REDIS_TLS_CA_FILE, 'utf8'), cert: readFileSync(files.REDIS_TLS_CERT_FILE, 'utf8'), key: readFileSync(files.REDIS_TLS_KEY_FILE, 'utf8') };
      // rediss: alone: TLS with Node's public CAs (a managed Redis).
      expect(loadConfig({ ...base, REDIS_URL: 'rediss://h:6380' }).state).toEqual({ kind: 'standalone', url: 'rediss://h:6380', tls: {} });
      expect(loadConfig(base).state).not.toHaveProperty('tls');
      const env = { ...files, REDIS_URL: 'rediss://:pw@h:6380', REDIS_BUS_CLUSTER_NODES: '10.0.0.1:7000' };
      expect(loadConfig({ ...base, ...env }).state).toEqual({ kind: 'standalone', url: env.REDIS_URL, tls });
      // A cluster takes REDIS_URL's TLS settings with its password; the worker reads them the same way.
      expect(loadConfig({ ...base, ...env }).bus).toEqual({ kind: 'cluster', nodes: [{ host: '10.0.0.1', port: 7000 }], password: 'pw', tls });
      expect(loadWorkerConfig(env).bus).toEqual(loadConfig({ ...base, ...env }).bus);
      // Files without rediss:, half a client identity, an unreadable or non-PEM file: nothing starts,
      // and the error names the file, never what is in it.
      expect(() => loadConfig({ ...base, ...files })).toThrow(/REDIS_TLS_CA_FILE.*rediss/);
      expect(() => loadConfig({ ...base, ...env, REDIS_TLS_KEY_FILE: '' })).toThrow(/REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE/);
      expect(() => loadWorkerConfig({ ...env, REDIS_TLS_CA_FILE: path.join(dir, 'missing.crt') })).toThrow(/missing\.crt \(ENOENT\)/);
      writeFileSync(path.join(dir, 'not-pem'), 'client.key-body');
      let message = '';
      try {
        loadConfig({ ...base, ...env, REDIS_TLS_KEY_FILE: path.join(dir, 'not-pem') });
      } catch (error) {
        message = (error as Error).message;
      }
      expect(message).toMatch(/REDIS_TLS_KEY_FILE: .*not-pem holds no PEM block/);
      expect(message).not.toContain('-body');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('runs the sharded adapter unless BUS_ADAPTER=classic, which only a standalone bus takes', () => {
    expect(loadConfig(base).busAdapter).toBe('sharded');
    expect(loadConfig({ ...base, BUS_ADAPTER: 'classic' }).busAdapter).toBe('classic');
    expect(() => loadConfig({ ...base, BUS_ADAPTER: 'classic', REDIS_BUS_CLUSTER_NODES: '127.0.0.1:7000' })).toThrow(/BUS_ADAPTER/);
    expect(() => loadWorkerConfig({ BUS_ADAPTER: 'classic', REDIS_BUS_CLUSTER_NODES: '127.0.0.1:7000' })).toThrow(/BUS_ADAPTER/);
    expect(() => loadConfig({ ...base, BUS_ADAPTER: 'fast' })).toThrow(ConfigError);
  });
});
