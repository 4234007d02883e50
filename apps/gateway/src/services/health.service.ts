/**
 * Readiness: the pod takes traffic while it is not draining and what it cannot serve without
 * answers. `checks` are one cheap round trip each (Postgres); one that throws means not ready.
 */
export function createHealthService(deps: { isDraining(): boolean; checks: readonly (() => Promise<unknown>)[] }) {
  return {
    async isReady(): Promise<boolean> {
      if (deps.isDraining()) return false;
      await Promise.all(deps.checks.map((check) => check()));
      return true;
    },
  };
}

export type HealthService = ReturnType<typeof createHealthService>;
