import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '@chat/gateway';
import { kustomize } from './kustomize.ts';

/**
 * Issue 18, point 4: in production the gateway checks whom a token was issued by and for. The
 * prod overlay's gateway ConfigMap names JWT_ISSUER and JWT_AUDIENCE (placeholders of the same
 * kind as its CORS origin, to be replaced per installation) and bounds a token's lifetime, and
 * the gateway accepts that configuration.
 */
const root = fileURLToPath(new URL('../..', import.meta.url));

describe('prod overlay: token claims', () => {
  it('sets JWT_ISSUER, JWT_AUDIENCE and JWT_MAX_LIFETIME_SECONDS in the gateway ConfigMap, and the gateway takes them', () => {
    const objects = kustomize(path.join(root, 'k8s/overlays/prod'));
    // Generated: named chat-gateway-config-<hash of its contents>.
    const config = objects.find((object) => object.kind === 'ConfigMap' && /^chat-gateway-config-[a-z0-9]{10}$/.test(object.metadata.name));
    const data = (config as unknown as { data: Record<string, string> }).data;
    expect(data.JWT_ISSUER).toMatch(/^https:\/\/\S+$/);
    expect(data.JWT_AUDIENCE).toMatch(/^\S+$/);
    expect(Number(data.JWT_MAX_LIFETIME_SECONDS)).toBeGreaterThan(0);
    const parsed = loadConfig({ ...data, JWT_SECRET: 'x'.repeat(48) });
    expect(parsed.jwt).toMatchObject({ issuer: data.JWT_ISSUER, audience: data.JWT_AUDIENCE, maxLifetimeSeconds: Number(data.JWT_MAX_LIFETIME_SECONDS) });
  });
});
