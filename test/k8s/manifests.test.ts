/**
 * Renders k8s/ (base, overlays dev and prod, prod with the optional components), schema-validates
 * every rendered object offline (kubernetes-models / @kubernetes-models/prometheus-operator:
 * the Kubernetes and Prometheus Operator OpenAPI schemas compiled to validators), and checks the
 * objects for everything issue 5 asks of them. Where `kubectl kustomize` exists, its output must
 * equal this test's renderer's. No network, no cluster.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import * as apps from 'kubernetes-models/apps/v1';
import * as autoscaling from 'kubernetes-models/autoscaling/v2';
import * as batch from 'kubernetes-models/batch/v1';
import * as core from 'kubernetes-models/v1';
import * as networking from 'kubernetes-models/networking.k8s.io/v1';
import * as policy from 'kubernetes-models/policy/v1';
import * as monitoring from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { parser as promql } from '@prometheus-io/lezer-promql';
import { SERVER_BATCH_MAX_BODY_BYTES } from '@chat/protocol';
import { createGatewayMetrics } from '../../apps/gateway/src/metrics.ts';
import { createWorkerMetrics } from '../../apps/worker/src/metrics.ts';
import { kustomize, kustomizeWith, objectId, type K8sObject } from './kustomize.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const k8s = path.join(root, 'k8s');
const overlays = ['dev', 'prod'] as const;

// ---------------------------------------------------------------------------------------------
// Loosely typed views of the rendered objects (the schemas are checked separately).
/* eslint-disable @typescript-eslint/no-explicit-any */
type Any = any;

const find = (objects: K8sObject[], kind: string, name: string): Any => {
  const found = objects.filter((object) => object.kind === kind && object.metadata.name === name);
  expect(found, `${kind}/${name}`).toHaveLength(1);
  return found[0];
};
const ofKind = (objects: K8sObject[], kind: string): Any[] => objects.filter((object) => object.kind === kind);
/** A generated ConfigMap's name: its configMapGenerator name, `-`, ten characters of its contents' hash. */
const hashedName = (name: string) => new RegExp(`^${name}-[a-z0-9]{10}$`);
/** The generated ConfigMap `name` (rendered as `name-<hash>`). */
const configMap = (objects: K8sObject[], name: string): Any => {
  const found = objects.filter((object) => object.kind === 'ConfigMap' && hashedName(name).test(object.metadata.name));
  expect(found, `ConfigMap ${name}-<hash>`).toHaveLength(1);
  return found[0];
};
const podSpec = (workload: Any): Any => workload.spec.template.spec;
const container = (workload: Any, name: string): Any => {
  const found = podSpec(workload).containers.find((c: Any) => c.name === name);
  expect(found, `container ${name}`).toBeDefined();
  return found;
};
const matches = (selector: Record<string, string>, labels: Record<string, string> = {}) =>
  Object.entries(selector).every(([key, value]) => labels[key] === value);

/** The NetworkPolicies whose podSelector (matchLabels and `In` expressions) selects the workload's pods. */
function policiesSelecting(policies: Any[], workload: Any): Any[] {
  const labels: Record<string, string> = workload.spec.template.metadata.labels;
  return policies.filter((policy) => {
    const selector = policy.spec.podSelector;
    const expressions: Any[] = selector.matchExpressions ?? [];
    for (const e of expressions) if (e.operator !== 'In') throw new Error(`operator ${e.operator} not handled here`);
    return matches(selector.matchLabels ?? {}, labels) && expressions.every((e) => e.values.includes(labels[e.key]));
  });
}

/** An egress peer that names something: an address range short of "everything", or labelled pods. */
function namedPeer(peer: Any): boolean {
  if (peer.ipBlock) {
    const [address, bits] = String(peer.ipBlock.cidr).split('/');
    return Number(bits) >= (String(address).includes(':') ? 32 : 8);
  }
  // Pods by label (in the policy's namespace or in labelled namespaces), never "any pod anywhere".
  return Object.keys(peer.podSelector?.matchLabels ?? {}).length > 0;
}

/** Peers by port (`6379`, or `7000-7005` for a rule with endPort), as egress rules list them. */
type PeersByPort = Record<string, Any[]>;
const portKey = ({ port, endPort }: Any) => (endPort ? `${port}-${endPort}` : String(port));
function addRules(peers: PeersByPort, rules: Any[]): PeersByPort {
  for (const rule of rules) for (const port of rule.ports) (peers[portKey(port)] ??= []).push(...rule.to);
  return peers;
}

/** What a workload's pods may reach: DNS or not, and the peers of every other port. */
function egressOf(policies: Any[], workload: Any): { dns: boolean; peers: PeersByPort } {
  let dns = false;
  const peers: PeersByPort = {};
  for (const policy of policiesSelecting(policies, workload)) {
    if (!policy.spec.policyTypes.includes('Egress')) continue;
    for (const rule of policy.spec.egress ?? []) {
      if (rule.ports.some((p: Any) => p.port === 53)) dns = true;
      addRules(peers, [{ ...rule, ports: rule.ports.filter((p: Any) => p.port !== 53) }]);
    }
  }
  return { dns, peers };
}

/**
 * The peers, port by port, each chat-egress-* policy gets from the overlay's own patch file
 * (none in the base): a Redis patch may add the sentinels' 26379 or a cluster's node ports.
 */
function overlayEgress(overlay: string): Record<string, PeersByPort> {
  const file = path.join(k8s, 'overlays', overlay, 'patches/networkpolicy.yaml');
  const named: Record<string, PeersByPort> = {};
  for (const document of parseAllDocuments(readFileSync(file, 'utf8'))) {
    const patch = document.toJS() as Any;
    named[patch.metadata.name] = addRules({}, patch.spec.egress);
  }
  return named;
}

/** The union of what several policies allow, port by port. */
const mergePeers = (...maps: (PeersByPort | undefined)[]): PeersByPort =>
  maps.reduce<PeersByPort>((all, map) => {
    for (const [port, peers] of Object.entries(map ?? {})) (all[port] ??= []).push(...peers);
    return all;
  }, {});

const models: Record<string, Record<string, unknown>> = {
  v1: core,
  'apps/v1': apps,
  'autoscaling/v2': autoscaling,
  'batch/v1': batch,
  'networking.k8s.io/v1': networking,
  'policy/v1': policy,
  'monitoring.coreos.com/v1': monitoring,
};

function schemaErrors(object: K8sObject): string | undefined {
  const Model = models[object.apiVersion]?.[object.kind] as (new (data: unknown) => { validate(): void }) | undefined;
  if (!Model) return `no schema for ${object.apiVersion} ${object.kind}`;
  try {
    new Model(object).validate();
    return undefined;
  } catch (error) {
    return `${object.kind}/${object.metadata.name}: ${(error as Error).message}`;
  }
}

// ---------------------------------------------------------------------------------------------
/** Every optional component, rendered together on top of prod (a test checks the list is complete). */
const components = ['hpa-connected-sockets', 'ingress-access-log', 'redis-tls', 'postgres-tls'] as const;
const rendered: Record<'base' | (typeof overlays)[number] | 'prod+components', K8sObject[]> = {
  base: kustomize(path.join(k8s, 'base')),
  dev: kustomize(path.join(k8s, 'overlays/dev')),
  prod: kustomize(path.join(k8s, 'overlays/prod')),
  'prod+components': kustomizeWith(
    [path.join(k8s, 'overlays/prod')],
    components.map((component) => path.join(k8s, 'components', component)),
  ),
};

const secretExample = parseYaml(readFileSync(path.join(k8s, 'base/secret.example.yaml'), 'utf8')) as Any;
const secretKeys = Object.keys(secretExample.stringData);

describe('k8s manifests render', () => {
  it('every rendering validates against the Kubernetes / Prometheus Operator schemas', () => {
    for (const [name, objects] of Object.entries(rendered)) {
      expect(objects.length, name).toBeGreaterThan(10);
      const errors = objects.map(schemaErrors).filter(Boolean);
      expect(errors, name).toEqual([]);
    }
  });

  it('has every kind issue 5 asks for, in each overlay', () => {
    for (const overlay of overlays) {
      const kinds = new Set(rendered[overlay].map((object) => object.kind));
      for (const kind of [
        'Deployment', 'Service', 'Ingress', 'HorizontalPodAutoscaler', 'PodDisruptionBudget', 'Job',
        'ConfigMap', 'NetworkPolicy', 'ServiceMonitor', 'Namespace', 'ServiceAccount',
      ]) {
        expect(kinds.has(kind), `${overlay}: ${kind}`).toBe(true);
      }
    }
  });

  describe('matches `kubectl kustomize` where kubectl exists', () => {
    let kubectl = false;
    let scratch = '';
    beforeAll(async () => {
      kubectl = await promisify(execFile)('kubectl', ['version', '--client'], { timeout: 10_000 }).then(
        () => true,
        () => false,
      );
      scratch = mkdtempSync(path.join(tmpdir(), 'chat-kustomize-'));
    });
    afterAll(() => rmSync(scratch, { recursive: true, force: true }));

    async function kubectlKustomize(dir: string): Promise<K8sObject[]> {
      const { stdout } = await promisify(execFile)('kubectl', ['kustomize', dir], { timeout: 20_000, maxBuffer: 16 << 20 });
      return parseAllDocuments(stdout)
        .map((document) => document.toJS() as K8sObject | null)
        .filter((object): object is K8sObject => object !== null);
    }

    function bySameIds(objects: K8sObject[]): Record<string, K8sObject> {
      return Object.fromEntries(objects.map((object) => [objectId(object), object]));
    }

    it('base, dev, prod and prod with the components', { timeout: 60_000 }, async (context) => {
      if (!kubectl) {
        console.warn('kubectl not found: comparison with kubectl kustomize skipped');
        context.skip();
      }
      // The components, on top of prod, through a throwaway kustomization (relative paths:
      // kustomize refuses absolute ones).
      const relative = (target: string) => path.relative(scratch, target);
      writeFileSync(
        path.join(scratch, 'kustomization.yaml'),
        [
          'apiVersion: kustomize.config.k8s.io/v1beta1',
          'kind: Kustomization',
          'resources:',
          `  - ${relative(path.join(k8s, 'overlays/prod'))}`,
          'components:',
          ...components.map((component) => `  - ${relative(path.join(k8s, 'components', component))}`),
          '',
        ].join('\n'),
      );
      const dirs = {
        base: path.join(k8s, 'base'),
        dev: path.join(k8s, 'overlays/dev'),
        prod: path.join(k8s, 'overlays/prod'),
        'prod+components': scratch,
      } as const;
      const results = await Promise.all(Object.values(dirs).map(kubectlKustomize));
      Object.keys(dirs).forEach((name, index) => {
        expect(bySameIds(rendered[name as keyof typeof dirs]), name).toEqual(bySameIds(results[index]!));
      });
    });
  });
});

describe.each(overlays)('overlay %s', (overlay) => {
  const objects = rendered[overlay];
  const namespace = overlay === 'prod' ? 'chat' : 'chat-dev';
  const gateway = find(objects, 'Deployment', 'chat-gateway');
  const worker = find(objects, 'Deployment', 'chat-worker');
  const gatewayConfigMap = configMap(objects, 'chat-gateway-config');
  const workerConfigMap = configMap(objects, 'chat-worker-config');
  const gatewayConfig = gatewayConfigMap.data;
  const workerConfig = workerConfigMap.data;
  const gatewayContainer = container(gateway, 'gateway');
  const workerContainer = container(worker, 'worker');

  it('puts everything in its namespace, which enforces the restricted pod security standard', () => {
    const ns = find(objects, 'Namespace', namespace);
    expect(ns.metadata.labels['pod-security.kubernetes.io/enforce']).toBe('restricted');
    for (const object of objects) {
      if (object.kind !== 'Namespace') expect(object.metadata.namespace, objectId(object)).toBe(namespace);
    }
  });

  it('gateway: readiness /readyz, liveness /livez, on the container port of PORT', () => {
    const port = gatewayContainer.ports.find((p: Any) => p.name === 'http');
    expect(port.containerPort).toBe(Number(gatewayConfig.PORT));
    expect(gatewayContainer.readinessProbe.httpGet).toMatchObject({ path: '/readyz', port: 'http' });
    expect(gatewayContainer.livenessProbe.httpGet).toMatchObject({ path: '/livez', port: 'http' });
    // Readiness reacts within seconds of a drain; liveness is far more patient than readiness.
    const readinessWindow = gatewayContainer.readinessProbe.periodSeconds * gatewayContainer.readinessProbe.failureThreshold;
    expect(readinessWindow).toBeLessThanOrEqual(15);
    expect(gatewayContainer.livenessProbe.periodSeconds * gatewayContainer.livenessProbe.failureThreshold).toBeGreaterThan(readinessWindow);
  });

  it('gateway: preStop sleep, and a grace period above preStop + the drain and shutdown timeouts', () => {
    const command: string[] = gatewayContainer.lifecycle.preStop.exec.command;
    expect(command[0]).toBe('sleep');
    const preStopSeconds = Number(command[1]);
    expect(preStopSeconds).toBeGreaterThanOrEqual(3);
    const grace = podSpec(gateway).terminationGracePeriodSeconds;
    const drainSeconds = Number(gatewayConfig.DRAIN_WINDOW_MS) / 1000;
    const shutdownSeconds = Number(gatewayConfig.SHUTDOWN_TIMEOUT_MS) / 1000;
    expect(drainSeconds).toBeGreaterThan(0);
    expect(shutdownSeconds).toBeGreaterThan(drainSeconds);
    expect(grace).toBeGreaterThan(preStopSeconds + drainSeconds);
    expect(grace).toBeGreaterThan(preStopSeconds + shutdownSeconds);
  });

  it('gateway: RollingUpdate with maxUnavailable 0, no replicas (the HPA owns them), spread over zones and nodes', () => {
    expect(gateway.spec.strategy.type).toBe('RollingUpdate');
    expect(gateway.spec.strategy.rollingUpdate.maxUnavailable).toBe(0);
    expect(gateway.spec.replicas).toBeUndefined();
    const spread = podSpec(gateway).topologySpreadConstraints as Any[];
    expect(spread.map((c) => c.topologyKey).sort()).toEqual(['kubernetes.io/hostname', 'topology.kubernetes.io/zone']);
    for (const constraint of spread) {
      expect(matches(constraint.labelSelector.matchLabels, gateway.spec.template.metadata.labels)).toBe(true);
    }
  });

  it('every workload: resources, non-root, read-only root filesystem with an emptyDir /tmp, no token', () => {
    const job = find(objects, 'Job', 'chat-migrate');
    for (const workload of [gateway, worker, job]) {
      const spec = podSpec(workload);
      expect(spec.securityContext.runAsNonRoot, workload.metadata.name).toBe(true);
      expect(spec.securityContext.runAsUser).toBeGreaterThan(0);
      expect(spec.securityContext.seccompProfile.type).toBe('RuntimeDefault');
      expect(spec.automountServiceAccountToken).toBe(false);
      for (const c of spec.containers) {
        expect(c.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false });
        expect(c.securityContext.capabilities.drop).toEqual(['ALL']);
        expect(c.resources.requests.cpu).toBeTruthy();
        expect(c.resources.requests.memory).toBeTruthy();
        expect(c.resources.limits.memory).toBeTruthy();
        const tmp = c.volumeMounts.find((mount: Any) => mount.mountPath === '/tmp');
        expect(spec.volumes.find((volume: Any) => volume.name === tmp.name).emptyDir).toBeDefined();
        // A released image, never :latest or an unpinned name.
        expect(c.image).toMatch(/^registry\.example\.com\/chat\/[a-z]+:[\w.-]+$/);
        expect(c.image).not.toMatch(/:latest$/);
      }
    }
  });

  it('worker: grace period above SHUTDOWN_TIMEOUT_MS, metrics port from METRICS_PORT', () => {
    expect(podSpec(worker).terminationGracePeriodSeconds).toBeGreaterThan(Number(workerConfig.SHUTDOWN_TIMEOUT_MS) / 1000);
    expect(workerContainer.ports.find((p: Any) => p.name === 'metrics').containerPort).toBe(Number(workerConfig.METRICS_PORT));
  });

  it('configuration: env from the ConfigMaps and Secret keys the example documents; dev login off everywhere', () => {
    // The generated ConfigMaps, by their hash-suffixed names (see the test on config changes below).
    expect(gatewayContainer.envFrom).toEqual([{ configMapRef: { name: gatewayConfigMap.metadata.name } }]);
    expect(workerContainer.envFrom).toEqual([{ configMapRef: { name: workerConfigMap.metadata.name } }]);
    const job = find(objects, 'Job', 'chat-migrate');
    for (const c of [gatewayContainer, workerContainer, ...podSpec(job).containers]) {
      for (const env of c.env ?? []) {
        const ref = env.valueFrom?.secretKeyRef;
        if (!ref) continue;
        expect(ref.name).toBe('chat-secrets');
        expect(secretKeys).toContain(ref.key);
      }
    }
    const names = (c: Any) => (c.env as Any[]).map((env) => env.name);
    expect(names(gatewayContainer)).toEqual(expect.arrayContaining(['DATABASE_URL', 'REDIS_URL', 'JWT_SECRET', 'POD_NAME']));
    expect(names(workerContainer)).toEqual(expect.arrayContaining(['DATABASE_URL', 'REDIS_URL', 'POD_NAME']));
    // The webhook endpoints hold their signing secrets: from the Secret, and only if it has them.
    expect(workerContainer.env.find((env: Any) => env.name === 'WEBHOOK_ENDPOINTS')?.valueFrom?.secretKeyRef).toEqual({
      name: 'chat-secrets',
      key: 'WEBHOOK_ENDPOINTS',
      optional: true,
    });
    // The sentinels' password (REDIS_SENTINEL_PASSWORD, read by packages/bus/src/redis-env.ts):
    // from the Secret into both apps, optional (no Sentinel, or none with a password).
    for (const c of [gatewayContainer, workerContainer]) {
      expect(c.env.find((env: Any) => env.name === 'REDIS_SENTINEL_PASSWORD')?.valueFrom?.secretKeyRef, c.name).toEqual({
        name: 'chat-secrets',
        key: 'REDIS_SENTINEL_PASSWORD',
        optional: true,
      });
    }
    // Every key the example Secret documents is read by some workload (none documented for nothing).
    const read = new Set(
      [gatewayContainer, workerContainer, ...podSpec(job).containers].flatMap((c: Any) =>
        (c.env ?? []).map((env: Any) => env.valueFrom?.secretKeyRef?.key).filter(Boolean),
      ),
    );
    expect([...read].sort()).toEqual([...secretKeys].sort());
    // Gateways and worker on one bus: the worker's announcements go where the pods listen.
    expect(workerConfig.REDIS_BUS_CLUSTER_NODES).toBe(gatewayConfig.REDIS_BUS_CLUSTER_NODES);
    // AUTH_DEV_LOGIN: "false" in the ConfigMap, and nowhere anything else.
    expect(gatewayConfig.AUTH_DEV_LOGIN).toBe('false');
    const text = JSON.stringify(objects);
    expect(text.match(/"AUTH_DEV_LOGIN"(:|,"value":)"(?!false")/g)).toBeNull();
  });

  it('the Secret: never rendered (created out of band; dev: overlays/dev/create-secret.sh); the example holds no secret', () => {
    expect(ofKind(objects, 'Secret')).toEqual([]);
    for (const value of Object.values(secretExample.stringData) as string[]) expect(value).toMatch(/CHANGE-ME/);
  });

  it('Service and Ingress: websocket timeouts of an hour, no affinity, only public paths (/docs only where the overlay asks), no access log', () => {
    const service = find(objects, 'Service', 'chat-gateway');
    expect(matches(service.spec.selector, gateway.spec.template.metadata.labels)).toBe(true);
    expect(service.spec.sessionAffinity).toBe('None');
    const targetPort = service.spec.ports.find((p: Any) => p.name === 'http').targetPort;
    expect(gatewayContainer.ports.map((p: Any) => p.name)).toContain(targetPort);

    const ingress = find(objects, 'Ingress', 'chat-gateway');
    const annotations = ingress.metadata.annotations;
    expect(Number(annotations['nginx.ingress.kubernetes.io/proxy-read-timeout'])).toBeGreaterThanOrEqual(3600);
    expect(Number(annotations['nginx.ingress.kubernetes.io/proxy-send-timeout'])).toBeGreaterThanOrEqual(3600);
    expect(annotations['nginx.ingress.kubernetes.io/affinity']).toBeUndefined();
    // ingress-nginx's default format logs the query string, where a handshake may carry its token.
    expect(annotations['nginx.ingress.kubernetes.io/enable-access-log']).toBe('false');
    // A body the gateways accept passes (a server API batch is up to 1,600 KiB): a too large one
    // gets the gateway's 413 in the protocol's shape, not ingress-nginx's HTML page.
    const [, amount, unit] = /^(\d+)([kKmM]?)$/.exec(annotations['nginx.ingress.kubernetes.io/proxy-body-size'])!;
    const bodyBytes = Number(amount) * ({ '': 1, k: 1024, m: 1024 * 1024 } as Record<string, number>)[unit!.toLowerCase()]!;
    expect(bodyBytes).toBeGreaterThanOrEqual(SERVER_BATCH_MAX_BODY_BYTES);
    const paths = ingress.spec.rules.flatMap((rule: Any) => rule.http.paths);
    // The API docs are public only where an overlay lists them: dev does, prod does not.
    const docs = overlay === 'dev' ? ['Prefix /docs'] : [];
    expect(paths.map((p: Any) => `${p.pathType} ${p.path}`).sort()).toEqual(
      ['Exact /', 'Exact /favicon.svg', 'Prefix /api', 'Prefix /assets', ...docs, 'Prefix /socket.io'].sort(),
    );
    // The probes and the metrics are not reachable from outside.
    for (const internal of ['/metrics', '/livez', '/readyz']) {
      const routed = paths.some((p: Any) =>
        p.pathType === 'Exact' ? p.path === internal : internal === p.path || internal.startsWith(`${p.path.replace(/\/$/, '')}/`),
      );
      expect(routed, internal).toBe(false);
    }
    for (const p of paths) {
      expect(p.backend.service.name).toBe('chat-gateway');
      expect(service.spec.ports.map((port: Any) => port.name)).toContain(p.backend.service.port.name);
    }
    const source = readFileSync(path.join(k8s, 'base/gateway-ingress.yaml'), 'utf8');
    expect(source).toMatch(/Why no session affinity/);
    // No affinity because the server takes the websocket transport only: no long-polling
    // session (several requests that must reach one pod) can exist.
    expect(readFileSync(path.join(root, 'apps/gateway/src/realtime/socket-server.ts'), 'utf8')).toMatch(/transports: \['websocket'\],/);
    expect(source).toMatch(/transports: \['websocket'\]/);
  });

  it('HPA: CPU, with a scale-down stabilisation window and a gentle scale-down policy', () => {
    const hpa = find(objects, 'HorizontalPodAutoscaler', 'chat-gateway');
    expect(hpa.spec.scaleTargetRef).toEqual({ apiVersion: 'apps/v1', kind: 'Deployment', name: 'chat-gateway' });
    expect(hpa.spec.metrics).toEqual([
      { type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: expect.any(Number) } } },
    ]);
    expect(hpa.spec.minReplicas).toBeGreaterThanOrEqual(overlay === 'prod' ? 3 : 1);
    expect(hpa.spec.maxReplicas).toBeGreaterThan(hpa.spec.minReplicas);
    expect(hpa.spec.behavior.scaleDown.stabilizationWindowSeconds).toBeGreaterThanOrEqual(300);
    expect(hpa.spec.behavior.scaleDown.policies).toEqual([{ type: 'Pods', value: 1, periodSeconds: expect.any(Number) }]);
    // The documented custom metric.
    expect(readFileSync(path.join(k8s, 'base/gateway-hpa.yaml'), 'utf8')).toMatch(/chat_connected_sockets/);
  });

  it('PodDisruptionBudgets cover the gateway and the worker, one pod at a time', () => {
    for (const workload of [gateway, worker]) {
      const budgets = ofKind(objects, 'PodDisruptionBudget').filter((pdb) =>
        matches(pdb.spec.selector.matchLabels, workload.spec.template.metadata.labels),
      );
      expect(budgets, workload.metadata.name).toHaveLength(1);
      expect(budgets[0].spec.maxUnavailable).toBe(1);
    }
  });

  it('the migration Job runs before the rollout (Argo CD PreSync / Helm pre-upgrade hook)', () => {
    const job = find(objects, 'Job', 'chat-migrate');
    expect(job.metadata.annotations).toMatchObject({
      'argocd.argoproj.io/hook': 'PreSync',
      'helm.sh/hook': 'pre-install,pre-upgrade',
    });
    expect(podSpec(job).restartPolicy).toBe('Never');
    expect(job.spec.backoffLimit).toBeGreaterThan(0);
    expect(job.spec.activeDeadlineSeconds).toBeGreaterThan(0);
    expect(podSpec(job).containers[0].image).toMatch(/\/migrate:/);
  });

  it('hooks name no ServiceAccount that the sync or install has not created yet', () => {
    // A PreSync / pre-install hook runs before the non-hook objects are applied: on a first
    // install a pod naming a ServiceAccount that is not an earlier hook cannot be created.
    const hookWeight = (object: Any, phase: 'argocd' | 'helm'): number | undefined => {
      const a = object.metadata.annotations ?? {};
      if (phase === 'argocd') return a['argocd.argoproj.io/hook'] === 'PreSync' ? Number(a['argocd.argoproj.io/sync-wave'] ?? 0) : undefined;
      return /\bpre-install\b/.test(a['helm.sh/hook'] ?? '') ? Number(a['helm.sh/hook-weight'] ?? 0) : undefined;
    };
    const hooks = objects.filter((object) => hookWeight(object, 'argocd') !== undefined || hookWeight(object, 'helm') !== undefined);
    expect(hooks.map(objectId)).toContain(objectId(find(objects, 'Job', 'chat-migrate')));
    for (const hook of hooks as Any[]) {
      const account = hook.spec?.template?.spec?.serviceAccountName;
      if (account === undefined || account === 'default') continue;
      const sa = find(objects, 'ServiceAccount', account);
      for (const phase of ['argocd', 'helm'] as const) {
        if (hookWeight(hook, phase) === undefined) continue;
        expect(hookWeight(sa, phase), `${objectId(hook)} names ServiceAccount ${account}, not an earlier ${phase} hook`).toBeLessThan(hookWeight(hook, phase)!);
      }
    }
  });

  it('NetworkPolicy: default deny, then the ingress controller and Prometheus in', () => {
    const policies = ofKind(objects, 'NetworkPolicy');
    const defaultDeny = policies.find((p) => Object.keys(p.spec.podSelector).length === 0);
    expect(defaultDeny.spec.policyTypes.sort()).toEqual(['Egress', 'Ingress']);
    expect(defaultDeny.spec.ingress ?? []).toEqual([]);
    expect(defaultDeny.spec.egress ?? []).toEqual([]);

    const ingressFrom = (workload: Any, port: number) =>
      policiesSelecting(policies, workload)
        .flatMap((policy) => policy.spec.ingress ?? [])
        .filter((rule: Any) => rule.ports.some((p: Any) => p.port === port))
        .flatMap((rule: Any) => rule.from.map((from: Any) => from.namespaceSelector.matchLabels['kubernetes.io/metadata.name']));
    expect(ingressFrom(gateway, 3000).sort()).toEqual(['ingress-nginx', 'monitoring']);
    expect(ingressFrom(worker, Number(workerConfig.METRICS_PORT))).toEqual(['monitoring']);
    expect(policiesSelecting(policies, find(objects, 'Job', 'chat-migrate')).flatMap((p) => p.spec.ingress ?? [])).toEqual([]);
  });

  it('NetworkPolicy egress: DNS, and only the database, Redis, JWKS and webhook endpoints the overlay names', () => {
    const policies = ofKind(objects, 'NetworkPolicy');
    // No rule lets a port other than DNS go to any address: every such rule names its peers.
    for (const policy of policies) {
      for (const rule of policy.spec.egress ?? []) {
        expect(rule.ports?.length, policy.metadata.name).toBeGreaterThan(0);
        if (rule.ports.every((p: Any) => p.port === 53)) continue;
        expect(rule.to?.length, `${policy.metadata.name}: egress without \`to\``).toBeGreaterThan(0);
        for (const peer of rule.to) expect(namedPeer(peer), `${policy.metadata.name}: ${JSON.stringify(peer)}`).toBe(true);
      }
    }
    // What each workload may reach, port by port, is what the overlay's patch names.
    const named = overlayEgress(overlay);
    const postgres = named['chat-egress-postgres']!;
    const redis = named['chat-egress-redis']!;
    expect(Object.keys(postgres)).toContain('5432');
    expect(Object.keys(redis)).toContain('6379');
    const job = find(objects, 'Job', 'chat-migrate');
    const expected: [Any, PeersByPort][] = [
      // The identity provider's JWKS is the gateway's alone, the webhook receivers the worker's.
      [gateway, mergePeers(postgres, redis, named['chat-egress-jwks'])],
      [worker, mergePeers(postgres, redis, named['chat-egress-webhooks'])],
      [job, mergePeers(postgres)],
    ];
    for (const [workload, ports] of expected) {
      const reach = egressOf(policies, workload);
      expect(reach.dns, workload.metadata.name).toBe(true);
      expect(reach.peers, workload.metadata.name).toEqual(ports);
      for (const peers of Object.values(ports)) expect(peers.length).toBeGreaterThan(0);
    }
  });

  it('ServiceMonitors scrape /metrics of the gateway and worker Services, by port name', () => {
    for (const [name, workload, portName] of [
      ['chat-gateway', gateway, 'http'],
      ['chat-worker', worker, 'metrics'],
    ] as const) {
      const monitor = find(objects, 'ServiceMonitor', name);
      const services = ofKind(objects, 'Service').filter((s) => matches(monitor.spec.selector.matchLabels, s.metadata.labels));
      expect(services, name).toHaveLength(1);
      expect(matches(services[0].spec.selector, workload.spec.template.metadata.labels)).toBe(true);
      expect(monitor.spec.endpoints).toEqual([expect.objectContaining({ port: portName, path: '/metrics' })]);
      expect(services[0].spec.ports.map((p: Any) => p.name)).toContain(portName);
      // The Service name is the `job` label the Grafana dashboard filters on.
      expect(services[0].metadata.name).toBe(name);
    }
  });

  describe('PrometheusRule chat-alerts', () => {
    const rules: Any[] = find(objects, 'PrometheusRule', 'chat-alerts').spec.groups.flatMap((group: Any) => group.rules);
    const readme = readFileSync(path.join(k8s, 'README.md'), 'utf8');

    it('alerts on the gateway and the worker being down, sends failing, Postgres, Redis, latency and the sweep', () => {
      const names = rules.map((rule) => rule.alert);
      expect(new Set(names).size).toBe(names.length);
      for (const wanted of [
        'ChatGatewayDown', 'ChatWorkerDown', 'ChatSendsUnavailable', 'ChatPostgresErrors', 'ChatRedisErrors',
        'ChatSendAckSlow', 'ChatPersistSlow', 'ChatEventLoopLag', 'ChatRoomSweepStalled',
      ]) {
        expect(names).toContain(wanted);
      }
      // `up` of the jobs the ServiceMonitors create (the Service names).
      expect(rules.find((rule) => rule.alert === 'ChatGatewayDown').expr).toContain('up{job="chat-gateway"}');
      expect(rules.find((rule) => rule.alert === 'ChatWorkerDown').expr).toContain('up{job="chat-worker"}');
    });

    it('every expression parses as PromQL', () => {
      for (const rule of rules) {
        const errors: number[] = [];
        promql.parse(rule.expr).iterate({ enter: (node) => void (node.type.isError && errors.push(node.from)) });
        expect(errors, `${rule.alert}: ${rule.expr}`).toEqual([]);
      }
    });

    it('queries only metrics the gateway and the worker export', async () => {
      const exported = new Set<string>();
      for (const { registry } of [createGatewayMetrics(), createWorkerMetrics()]) {
        for (const metric of await registry.getMetricsAsJSON()) exported.add(metric.name);
      }
      const used = new Set(
        rules.flatMap((rule) => [...String(rule.expr).matchAll(/\b((?:chat|nodejs)_[a-z0-9_]+)/g)].map((m) => m[1]!.replace(/_(bucket|sum|count)$/, ''))),
      );
      expect(used.size).toBeGreaterThan(8);
      for (const name of used) expect(exported, name).toContain(name);
    });

    it('each alert has a severity, a summary and a runbook entry in k8s/README.md', () => {
      const headings = new Set([...readme.matchAll(/^### (\S+)$/gm)].map((m) => m[1]));
      for (const rule of rules) {
        expect(['critical', 'warning', 'info'], rule.alert).toContain(rule.labels?.severity);
        expect(rule.annotations?.summary, rule.alert).toBeTruthy();
        expect(rule.annotations?.runbook, rule.alert).toBe(`k8s/README.md#${rule.alert.toLowerCase()}`);
        expect(headings, rule.alert).toContain(rule.alert);
      }
    });
  });
});

describe('a configuration change rolls the pods', () => {
  // The ConfigMaps are generated (base/kustomization.yaml configMapGenerator): each name carries
  // a hash of the contents, so a changed value is a changed pod template and the Deployment
  // rolls. With a plain ConfigMap, old pods kept the old values next to new pods with the new.
  const plain = { 'chat-gateway': 'chat-gateway-config', 'chat-worker': 'chat-worker-config' } as const;

  it('every rendering: both Deployments read a ConfigMap named <name>-<hash>, and no ConfigMap without a hash exists', () => {
    for (const [rendering, objects] of Object.entries(rendered)) {
      for (const [deployment, name] of Object.entries(plain)) {
        const refs = podSpec(find(objects, 'Deployment', deployment)).containers.flatMap((c: Any) =>
          (c.envFrom ?? []).map((from: Any) => from.configMapRef?.name),
        );
        expect(refs, `${rendering}: ${deployment}`).toEqual([expect.stringMatching(hashedName(name))]);
        expect(configMap(objects, name).metadata.name, rendering).toBe(refs[0]);
        expect(ofKind(objects, 'ConfigMap').map((c) => c.metadata.name), rendering).not.toContain(name);
      }
    }
  });

  it('changing one value (a bus setting) changes each Deployment\'s pod template, and nothing else in it', () => {
    const scratch = mkdtempSync(path.join(tmpdir(), 'chat-config-change-'));
    try {
      writeFileSync(
        path.join(scratch, 'kustomization.yaml'),
        ['apiVersion: kustomize.config.k8s.io/v1beta1', 'kind: Kustomization', 'resources:', `  - ${path.relative(scratch, path.join(k8s, 'base'))}`, 'patches:', '  - path: config.yaml', ''].join('\n'),
      );
      writeFileSync(
        path.join(scratch, 'config.yaml'),
        Object.values(plain)
          .map((name) => `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${name}\ndata:\n  REDIS_BUS_CLUSTER_NODES: redis-bus-0.cache:6379\n`)
          .join('---\n'),
      );
      const changed = kustomize(scratch);
      for (const [deployment, name] of Object.entries(plain)) {
        const before = find(rendered.base, 'Deployment', deployment);
        const after = find(changed, 'Deployment', deployment);
        expect(configMap(changed, name).data.REDIS_BUS_CLUSTER_NODES).toBe('redis-bus-0.cache:6379');
        const [oldName, newName] = [configMap(rendered.base, name).metadata.name, configMap(changed, name).metadata.name];
        expect(newName, deployment).not.toBe(oldName);
        // The template differs (so the Deployment rolls), and only in the ConfigMap's name.
        expect(after.spec.template, deployment).not.toEqual(before.spec.template);
        expect(JSON.parse(JSON.stringify(after.spec.template).replaceAll(newName, oldName))).toEqual(before.spec.template);
      }
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  });
});

describe('k8s/README.md: the Postgres connections prod needs', () => {
  it('states the figures the prod manifests and the apps\' pools give', () => {
    const objects = rendered.prod;
    const source = (file: string) => readFileSync(path.join(root, file), 'utf8');
    // The pools as the apps open them: the gateway's DATABASE_POOL_SIZE plus its one-connection
    // writer, the worker's fixed pool.
    expect(source('apps/gateway/src/deps.ts')).toMatch(/maxConnections: config\.databasePoolSize,[\s\S]*?maxConnections: 1,[\s\S]*?synchronousCommit: 'off'/);
    const workerPool = Number(/maxConnections: (\d+)/.exec(source('apps/worker/src/deps.ts'))?.[1]);
    expect(workerPool).toBeGreaterThan(0);
    const perGateway = Number(configMap(objects, 'chat-gateway-config').data.DATABASE_POOL_SIZE) + 1;
    const maxReplicas = find(objects, 'HorizontalPodAutoscaler', 'chat-gateway').spec.maxReplicas;
    const gateway = find(objects, 'Deployment', 'chat-gateway');
    const surge = Math.ceil((maxReplicas * Number(String(gateway.spec.strategy.rollingUpdate.maxSurge).replace('%', ''))) / 100);
    const worker = find(objects, 'Deployment', 'chat-worker');
    const workers = (worker.spec.replicas + worker.spec.strategy.rollingUpdate.maxSurge) * workerPool;

    const readme = readFileSync(path.join(k8s, 'README.md'), 'utf8');
    const needs = /^## What the cluster needs\n([\s\S]*?)^## /m.exec(readme)?.[1] ?? '';
    const figure = (n: number) => n.toLocaleString('en-US');
    expect(needs).toContain(`${maxReplicas} × (${perGateway - 1} + 1) = **${figure(maxReplicas * perGateway)} steady**`);
    expect(needs).toContain(`${maxReplicas + surge} × ${perGateway} = ${figure((maxReplicas + surge) * perGateway)}`);
    expect(needs).toContain(`${maxReplicas + 2 * surge} × ${perGateway} = ${figure((maxReplicas + 2 * surge) * perGateway)}`);
    expect(needs).toContain(`× ${workerPool} = ${workers}`);
    expect(needs).toMatch(/transaction pooling is \*\*not\*\*\s+suitable for the writer connection/);
  });
});

describe('k8s/README.md: idle connections per pod', () => {
  it('leaves headroom in the memory limit beyond the measured cost per connection, and recommends the sockets HPA', () => {
    const readme = readFileSync(path.join(k8s, 'README.md'), 'utf8');
    const capacity = /^## Capacity model\n([\s\S]*?)^## /m.exec(readme)?.[1] ?? '';
    // The measured cost per idle connection (the unit-cost table's range; its high end).
    const kib = /\| idle connection \| [\d.]+–([\d.]+) KiB RSS/.exec(capacity)?.[1];
    expect(kib).toBeDefined();
    const perGiB = Number(/about ([\d,]+) idle ones per GiB/.exec(capacity)?.[1]?.replaceAll(',', ''));
    expect(perGiB).toBeGreaterThan(0);
    // At most 60% of the limit for the sockets: the rest for the process, garbage and bursts.
    expect(perGiB * Number(kib) * 1024).toBeLessThanOrEqual(0.6 * 2 ** 30);
    // "Per GiB" is against prod's gateway limit, the one the section names.
    expect(container(find(rendered.prod, 'Deployment', 'chat-gateway'), 'gateway').resources.limits.memory).toBe('1Gi');
    expect(capacity).toMatch(/In production,\s+where connections rather than traffic bound the pods, enable\s+`components\/hpa-connected-sockets`/);
  });
});

describe('overlay dev: the Secret create-secret.sh makes', () => {
  it('points REDIS_URL (its default) and DATABASE_URL (its example) where dev\'s egress allows', () => {
    const script = readFileSync(path.join(k8s, 'overlays/dev/create-secret.sh'), 'utf8');
    const redisUrl = /REDIS_URL:-([^}"]+)\}/.exec(script)?.[1];
    const databaseUrl = /^#\s+DATABASE_URL='([^']+)'/m.exec(script)?.[1];
    expect(redisUrl).toBeDefined();
    expect(databaseUrl).toBeDefined();
    // The namespace a Service name resolves in: `<service>.<namespace>.svc…`, else the pod's own.
    const namespaceOf = (url: string) => new URL(url).hostname.split('.')[1] ?? 'chat-dev';
    const allowedNamespaces = (policy: string) =>
      Object.values(overlayEgress('dev')[policy]!)
        .flat()
        .map((peer: Any) => peer.namespaceSelector?.matchLabels?.['kubernetes.io/metadata.name']);
    expect(allowedNamespaces('chat-egress-redis')).toContain(namespaceOf(redisUrl!));
    expect(allowedNamespaces('chat-egress-postgres')).toContain(namespaceOf(databaseUrl!));
  });
});

describe('optional components', () => {
  const objects = rendered['prod+components'];

  it('are all rendered here, and none turns on session affinity (the gateway serves websockets only)', () => {
    expect(readdirSync(path.join(k8s, 'components')).sort()).toEqual([...components].sort());
    expect(find(objects, 'Ingress', 'chat-gateway').metadata.annotations['nginx.ingress.kubernetes.io/affinity']).toBeUndefined();
    expect(find(objects, 'Service', 'chat-gateway').spec.sessionAffinity).toBe('None');
  });

  it('hpa-connected-sockets adds chat_connected_sockets per pod and keeps CPU', () => {
    const hpa = find(objects, 'HorizontalPodAutoscaler', 'chat-gateway');
    expect(hpa.spec.metrics.map((m: Any) => m.type).sort()).toEqual(['Pods', 'Resource']);
    const pods = hpa.spec.metrics.find((m: Any) => m.type === 'Pods').pods;
    expect(pods.metric.name).toBe('chat_connected_sockets');
    expect(pods.target.type).toBe('AverageValue');
    expect(hpa.spec.behavior.scaleDown.stabilizationWindowSeconds).toBeGreaterThanOrEqual(300);
  });

  it('ingress-access-log turns the access log back on', () => {
    const annotations = find(objects, 'Ingress', 'chat-gateway').metadata.annotations;
    expect(annotations['nginx.ingress.kubernetes.io/enable-access-log']).toBe('true');
  });

  it('redis-tls mounts the Secret chat-redis-tls read-only in both apps and points REDIS_TLS_*_FILE into it', () => {
    for (const [name, containerName, configName] of [
      ['chat-gateway', 'gateway', 'chat-gateway-config'],
      ['chat-worker', 'worker', 'chat-worker-config'],
    ] as const) {
      const workload = find(objects, 'Deployment', name);
      const volume = podSpec(workload).volumes.find((v: Any) => v.name === 'redis-tls');
      expect(volume.secret).toMatchObject({ secretName: 'chat-redis-tls', defaultMode: 0o440 });
      const mount = container(workload, containerName).volumeMounts.find((m: Any) => m.name === 'redis-tls');
      expect(mount).toMatchObject({ readOnly: true });
      const files = volume.secret.items.map((item: Any) => `${mount.mountPath}/${item.path}`).sort();
      const config = configMap(objects, configName).data;
      expect([config.REDIS_TLS_CA_FILE, config.REDIS_TLS_CERT_FILE, config.REDIS_TLS_KEY_FILE].sort()).toEqual(files);
      // The rest of the pod is as before: /tmp still the only writable path.
      expect(container(workload, containerName).securityContext.readOnlyRootFilesystem).toBe(true);
    }
  });

  it('postgres-tls mounts the Secret chat-postgres-tls read-only where the gateways, the worker and the migration read DATABASE_URL', () => {
    for (const [kind, name, containerName] of [
      ['Deployment', 'chat-gateway', 'gateway'],
      ['Deployment', 'chat-worker', 'worker'],
      ['Job', 'chat-migrate', 'migrate'],
    ] as const) {
      const workload = find(objects, kind, name);
      const volume = podSpec(workload).volumes.find((v: Any) => v.name === 'postgres-tls');
      expect(volume.secret).toMatchObject({ secretName: 'chat-postgres-tls', defaultMode: 0o440 });
      expect(volume.secret.items.map((item: Any) => item.path).sort()).toEqual(['ca.crt', 'tls.crt', 'tls.key']);
      expect(container(workload, containerName).volumeMounts).toContainEqual({ name: 'postgres-tls', mountPath: '/etc/chat/postgres-tls', readOnly: true });
      // Readable by the non-root user through its group, whatever the pod's own settings were.
      expect(podSpec(workload).securityContext).toMatchObject({ runAsUser: 1000, fsGroup: 1000, runAsNonRoot: true });
    }
  });
});

describe('base without an overlay', () => {
  const objects = rendered.base;

  it('lets the pods reach DNS only: no database, Redis, JWKS or webhook receiver until an overlay names them', () => {
    const policies = ofKind(objects, 'NetworkPolicy');
    for (const name of ['chat-egress-postgres', 'chat-egress-redis', 'chat-egress-jwks', 'chat-egress-webhooks']) {
      expect(find(objects, 'NetworkPolicy', name).spec.egress).toEqual([]);
    }
    // The worker POSTs webhooks; the gateways never call out to them.
    const webhooks = find(objects, 'NetworkPolicy', 'chat-egress-webhooks');
    expect(policiesSelecting([webhooks], find(objects, 'Deployment', 'chat-worker'))).toHaveLength(1);
    expect(policiesSelecting([webhooks], find(objects, 'Deployment', 'chat-gateway'))).toHaveLength(0);
    for (const workload of [find(objects, 'Deployment', 'chat-gateway'), find(objects, 'Deployment', 'chat-worker'), find(objects, 'Job', 'chat-migrate')]) {
      expect(egressOf(policies, workload), workload.metadata.name).toEqual({ dns: true, peers: {} });
    }
  });

  it('does not route /docs, and logs no access line for the chat', () => {
    const ingress = find(objects, 'Ingress', 'chat-gateway');
    const paths: string[] = ingress.spec.rules.flatMap((rule: Any) => rule.http.paths.map((p: Any) => p.path));
    expect(paths).not.toContain('/docs');
    expect(ingress.metadata.annotations['nginx.ingress.kubernetes.io/enable-access-log']).toBe('false');
  });
});

describe('ingress-nginx controller settings (k8s/ingress-nginx/values.yaml)', () => {
  const values = parseYaml(readFileSync(path.join(k8s, 'ingress-nginx/values.yaml'), 'utf8')) as Any;
  const config = values.controller.config as Record<string, string>;

  it('logs the path without its query string, and no other URL', () => {
    const format = config['log-format-upstream']!;
    expect(format).toContain('"$request_method $uri $server_protocol"');
    // $request, $request_uri, $args, $arg_*, $query_string, $is_args carry the query; the referer is a URL too.
    const variables = [...format.matchAll(/\$([a-z_]+)/g)].map((m) => m[1]!);
    for (const variable of variables) {
      expect(variable).not.toMatch(/^(request|request_uri|args|arg_\w+|query_string|is_args|http_referer|request_body)$/);
    }
    expect(variables).toEqual(expect.arrayContaining(['remote_addr', 'status', 'upstream_addr', 'upstream_status', 'req_id']));
  });

  it('keeps nginx error lines, which quote the request line, out of the log', () => {
    expect(config['error-log-level']).toBe('crit');
    expect(readFileSync(path.join(k8s, 'README.md'), 'utf8')).toContain('log-format-upstream');
  });

  it('is a deployment step in k8s/README.md, not an option: the Ingress alone cannot keep tokens out of the error log', () => {
    const readme = readFileSync(path.join(k8s, 'README.md'), 'utf8');
    const rollingOut = /^## Rolling out\n([\s\S]*?)^## /m.exec(readme)?.[1] ?? '';
    expect(rollingOut).toContain('k8s/ingress-nginx/values.yaml');
    expect(rollingOut).toContain('error-log-level: crit');
    expect(rollingOut).toContain('log-format-upstream');
  });
});
