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

/**
 * What each variable of an env schema's shape becomes when it is unset: its default, or
 * undefined / null when it has none (optional, or derived from others in the app's loadConfig).
 * The docs tests compare README's defaults with these, so that a default changed in code and
 * not in the docs (or the other way) fails a test instead of misleading an operator.
 */
export function envDefaultsOf(shape: Readonly<Record<string, z.ZodType>>): Readonly<Record<string, unknown>> {
  return Object.freeze(
    Object.fromEntries(
      Object.entries(shape).map(([name, schema]) => {
        const parsed = schema.safeParse(undefined);
        return [name, parsed.success ? parsed.data : undefined];
      }),
    ),
  );
}
