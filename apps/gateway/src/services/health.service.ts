import { withinDeadline } from '../lib/deadline.ts';

/**
 * How long readiness waits for its checks: under the readiness probe's 2 s timeout
 * (k8s/base/gateway-deployment.yaml), so a silent Postgres reads as a plain 503, not a probe
 * left hanging until the stall bound (DATABASE_STALL_TIMEOUT_MS, 15 s) ends the query.
 */
const READY_CHECK_BOUND_MS = 1500;

/**
 * Readiness: the pod takes traffic while it is not draining and what it cannot serve without
 * answers. `checks` are one cheap round trip each (Postgres); one that throws means not ready.
 * Probes that come while a check is still out wait for that one: a silent Postgres holds one
 * pool connection for readiness, not one per probe (the kubelet, the balancer, a curl loop).
 */
export function createHealthService(deps: { isDraining(): boolean; checks: readonly (() => Promise<unknown>)[] }) {
  let inFlight: Promise<unknown> | null = null;
  return {
    async isReady(): Promise<boolean> {
      if (deps.isDraining()) return false;
      if (!inFlight) {
        const run = Promise.all(deps.checks.map((check) => check())).finally(() => {
          if (inFlight === run) inFlight = null;
        });
        inFlight = run;
      }
      await withinDeadline(inFlight, READY_CHECK_BOUND_MS, () => new Error('readiness checks did not answer in time'));
      return true;
    },
  };
}

export type HealthService = ReturnType<typeof createHealthService>;
