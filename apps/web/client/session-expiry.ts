/**
 * Where a signed-in session stands against its token's `expiresAt` (the dev login's answer,
 * PROTOCOL §9), on the server's clock. No DOM: unit-tested in apps/web/test.
 */

/** The warning shows this long before the token expires. */
export const SESSION_ENDING_MS = 5 * 60_000;

export type SessionPhase = 'active' | 'ending' | 'ended';

export function sessionPhase(expiresAt: string, now: number): SessionPhase {
  const remaining = Date.parse(expiresAt) - now;
  if (!(remaining > 0)) return 'ended';
  return remaining <= SESSION_ENDING_MS ? 'ending' : 'active';
}
