import type { z } from 'zod';

/** An invalid environment: one line per problem, printed as the process stops. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((line) => `  - ${line}`).join('\n')}`);
  }
}

/**
 * The example files' secrets (k8s/base/secret.example.yaml) start with CHANGE-ME. A value that
 * still does was copied from the repository, where anyone can read it, and some pass every
 * other check (the example JWT_SECRET is over 32 bytes): refused at start instead.
 */
export function isPlaceholderSecret(value: string): boolean {
  return /^change-me/i.test(value.trim());
}

/** `env` through an app's env schema, or a ConfigError naming every variable that is wrong. */
export function parseEnv<S extends z.ZodType>(schema: S, env: Record<string, string | undefined>): z.output<S> {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((issue) => `${issue.path.join('.') || 'env'}: ${issue.message}`));
  }
  return parsed.data;
}
