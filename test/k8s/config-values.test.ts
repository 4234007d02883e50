import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { ENV_VARIABLES, loadConfig } from '@chat/gateway';
import { WORKER_ENV_VARIABLES, loadWorkerConfig } from '@chat/worker';
import { kustomize, kustomizeWith, type K8sObject } from './kustomize.ts';

/**
 * The environment each rendered Deployment gives its container (the generated ConfigMap through
 * envFrom, `env` values, the Secret's keys as base/secret.example.yaml documents them), run
 * through the apps' own config parsers: a manifest value the code would refuse, or two that
 * contradict each other, fails here instead of in a crash-looping rollout.
 */
const root = fileURLToPath(new URL('../..', import.meta.url));
const k8s = path.join(root, 'k8s');

/* eslint-disable @typescript-eslint/no-explicit-any */
type Any = any;

const secretExample = parseYaml(readFileSync(path.join(k8s, 'base/secret.example.yaml'), 'utf8')) as Any;
/** The example's values with the placeholder replaced, as an operator fills them in. */
const secret: Record<string, string> = Object.fromEntries(
  Object.entries(secretExample.stringData as Record<string, string>).map(([key, value]) => [key, value.replaceAll('CHANGE-ME', 'changed0')]),
);

const renderings = {
  base: kustomize(path.join(k8s, 'base')),
  dev: kustomize(path.join(k8s, 'overlays/dev')),
  prod: kustomize(path.join(k8s, 'overlays/prod')),
};

function deployment(objects: K8sObject[], name: string): Any {
  const found = objects.find((object) => object.kind === 'Deployment' && object.metadata.name === name);
  expect(found, name).toBeDefined();
  return found;
}

/** What the container's process.env holds of the app's variables, as the kubelet would set it. */
function containerEnv(objects: K8sObject[], name: string, only?: 'secrets-and-fields'): Record<string, string> {
  const [container] = deployment(objects, name).spec.template.spec.containers as Any[];
  const env: Record<string, string> = {};
  if (only === undefined) {
    for (const from of container.envFrom ?? []) {
      const configMap = objects.find((object) => object.kind === 'ConfigMap' && object.metadata.name === from.configMapRef.name) as Any;
      expect(configMap, from.configMapRef.name).toBeDefined();
      Object.assign(env, configMap.data);
    }
  }
  for (const entry of container.env ?? []) {
    if (entry.value !== undefined) env[entry.name] = entry.value;
    else if (entry.valueFrom?.fieldRef) env[entry.name] = `${name}-7d9f8b6c4-x2x7q`;
    else if (entry.valueFrom?.secretKeyRef) {
      const value = secret[entry.valueFrom.secretKeyRef.key];
      if (value !== undefined) env[entry.name] = value;
    }
  }
  return env;
}

describe.each(Object.keys(renderings) as (keyof typeof renderings)[])('rendering %s: the environment the pods get', (rendering) => {
  const objects = renderings[rendering];

  it('the gateway and the worker accept it', () => {
    expect(() => loadConfig(containerEnv(objects, 'chat-gateway'))).not.toThrow();
    expect(() => loadWorkerConfig(containerEnv(objects, 'chat-worker'))).not.toThrow();
  });

  it('names no variable the app does not read', () => {
    const unread = (env: Record<string, string>, known: readonly string[]) => Object.keys(env).filter((name) => !known.includes(name));
    expect(unread(containerEnv(objects, 'chat-gateway'), ENV_VARIABLES)).toEqual([]);
    expect(unread(containerEnv(objects, 'chat-worker'), WORKER_ENV_VARIABLES)).toEqual([]);
  });

  it('the gateway: SHUTDOWN_TIMEOUT_MS holds the drain window, then a group commit waiting out its deadline', () => {
    // Shutdown drains the sockets over DRAIN_WINDOW_MS, then waits for the writer's last batch,
    // which a stalled Postgres holds until the batch deadline (2 × statement timeout + 5 s, what
    // DATABASE_STALL_TIMEOUT_MS defaults to), then closes HTTP (2 s at most), Redis, Postgres.
    // A budget short of that exits 1 with acknowledged-to-be sends unanswered.
    const env = containerEnv(objects, 'chat-gateway');
    const config = loadConfig(env);
    const batchDeadlineMs = loadConfig({ ...env, DATABASE_STALL_TIMEOUT_MS: undefined }).databaseStallTimeoutMs;
    expect(config.shutdownTimeoutMs).toBeGreaterThanOrEqual(config.drainWindowMs + batchDeadlineMs + 2000);
  });
});

describe('ConfigMaps hold no secret', () => {
  it('in any rendering, components included: no Secret key, no password in a URL, no private key', () => {
    const components = ['hpa-connected-sockets', 'ingress-access-log', 'redis-tls', 'postgres-tls'].map((name) => path.join(k8s, 'components', name));
    const all = [...Object.values(renderings), kustomizeWith([path.join(k8s, 'overlays/prod')], components)];
    // What the Secret carries, and what only a Secret may: API key hashes are not secrets.
    const secretNames = [...Object.keys(secret), 'JWT_SECRET', 'REDIS_SENTINEL_PASSWORD'];
    for (const objects of all) {
      for (const configMap of objects.filter((object) => object.kind === 'ConfigMap') as Any[]) {
        for (const [key, value] of Object.entries(configMap.data ?? {}) as [string, string][]) {
          expect(secretNames, `${configMap.metadata.name}: ${key}`).not.toContain(key);
          expect(value, `${configMap.metadata.name}: ${key}`).not.toMatch(/:\/\/[^/@\s]*:[^/@\s]*@|PRIVATE KEY/);
        }
      }
    }
  });
});

describe('base ConfigMaps', () => {
  it("restate the code's defaults (a default changed in code must be changed here too, or kept on purpose)", () => {
    // Kept on purpose: none. A value here that differs from the code's default pins it for
    // every cluster; list it below with the reason if that is what is meant.
    const deliberate: Record<string, string> = {};
    for (const [name, load] of [
      ['chat-gateway', loadConfig],
      ['chat-worker', loadWorkerConfig],
    ] as const) {
      const withBase = containerEnv(renderings.base, name);
      const defaults = containerEnv(renderings.base, name, 'secrets-and-fields');
      for (const key of Object.keys(deliberate)) delete withBase[key];
      expect(load(withBase), name).toEqual(load(defaults));
    }
  });

  it('every variable the apps read is set in the base, or left to its default on purpose', () => {
    // Left unset in every cluster unless an overlay or a component sets it, each for a reason.
    // A variable added to the code must be added to a ConfigMap or here: the decision is made.
    const leftToDefault: Record<string, string> = {
      BUS_ADAPTER: 'sharded is the product; classic is for benchmarks only',
      REDIS_TLS_CA_FILE: 'components/redis-tls sets it',
      REDIS_TLS_CERT_FILE: 'components/redis-tls sets it',
      REDIS_TLS_KEY_FILE: 'components/redis-tls sets it',
      JWT_JWKS_URL: 'the alternative to JWT_SECRET: an overlay patch (k8s/README.md "The Secret")',
      JWT_ISSUER: 'the identity provider\'s: overlays/prod sets it',
      JWT_AUDIENCE: 'the identity provider\'s: overlays/prod sets it',
      JWT_MAX_LIFETIME_SECONDS: 'overlays/prod sets it',
      NODE_ENV: 'the image sets production (infra/Dockerfile)',
      MESSAGE_RATE_LEASE_MS: 'a tuning of the send budget, measured at its default',
      EARLY_LOCK_RELEASE_MESSAGES_PER_SECOND: 'a tuning of the group commit, measured at its default',
      EARLY_LOCK_RELEASE_BATCH_SIZE: 'a tuning of the group commit, measured at its default',
      GROUP_COMMIT_LINGER_MS: 'a tuning of the group commit, measured at its default',
      FAILED_EVENT_LIMIT_PER_MINUTE: 'an abuse bound nobody tunes per cluster',
      SOCKET_LEASE_MS: 'how fast a dead pod\'s socket places lapse; its default is what PROTOCOL §1 states',
      ROOM_OCCUPANCY_GRACE_MS: 'what docs/webhooks.md states for room-occupied / room-vacated',
      SERVER_API_RATE_LIMIT_PER_MINUTE: 'per key; its default is what PROTOCOL §17 states',
      FAULT_BUS_SUBSCRIBE_DELAY_MS: 'fault injection for tests, never in a cluster',
      FAULT_CRASH_AFTER_COMMIT: 'fault injection for tests, never in a cluster',
      METRICS_HOST: "every interface of the pod, the default: Prometheus scrapes the pod's address",
      WEBHOOK_POLL_INTERVAL_MS: 'docs/webhooks.md: a tuning measured at its default',
      WEBHOOK_TIMEOUT_MS: 'docs/webhooks.md: a tuning measured at its default',
      WEBHOOK_BATCH_SIZE: 'docs/webhooks.md: a tuning measured at its default',
      WEBHOOK_CONCURRENCY: 'docs/webhooks.md: a tuning measured at its default',
    };
    for (const [name, variables] of [
      ['chat-gateway', ENV_VARIABLES],
      ['chat-worker', WORKER_ENV_VARIABLES],
    ] as const) {
      const set = Object.keys(containerEnv(renderings.base, name));
      expect(variables.filter((variable) => !set.includes(variable) && !(variable in leftToDefault)), name).toEqual([]);
      expect(set.filter((variable) => variable in leftToDefault), name).toEqual([]);
    }
  });
});

describe('k8s/README.md: the shutdown figures', () => {
  it('are the ones the base and prod render', () => {
    const readme = readFileSync(path.join(k8s, 'README.md'), 'utf8');
    const figures = (objects: K8sObject[]) => {
      const gateway = deployment(objects, 'chat-gateway').spec.template.spec;
      const worker = deployment(objects, 'chat-worker').spec.template.spec;
      const gatewayConfig = loadConfig(containerEnv(objects, 'chat-gateway'));
      return {
        grace: gateway.terminationGracePeriodSeconds as number,
        preStop: Number(gateway.containers[0].lifecycle.preStop.exec.command[1]),
        shutdown: gatewayConfig.shutdownTimeoutMs / 1000,
        drain: gatewayConfig.drainWindowMs / 1000,
        workerGrace: worker.terminationGracePeriodSeconds as number,
        workerShutdown: loadWorkerConfig(containerEnv(objects, 'chat-worker')).shutdownTimeoutMs / 1000,
      };
    };
    const [base, prod] = [figures(renderings.base), figures(renderings.prod)];
    expect(readme).toContain(
      `\`terminationGracePeriodSeconds\` ${base.grace} (prod ${prod.grace}) > preStop ${base.preStop} s + \`SHUTDOWN_TIMEOUT_MS\` ${base.shutdown} s (prod ${prod.shutdown} s), which bounds the \`DRAIN_WINDOW_MS\` ${base.drain} s (prod ${prod.drain} s) drain`,
    );
    expect(prod.preStop).toBe(base.preStop);
    expect(readme).toContain(`(grace ${base.workerGrace} s > worker \`SHUTDOWN_TIMEOUT_MS\` ${base.workerShutdown} s:`);
    expect([prod.workerGrace, prod.workerShutdown]).toEqual([base.workerGrace, base.workerShutdown]);
  });
});
