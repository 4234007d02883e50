import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '@chat/gateway';

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
});
