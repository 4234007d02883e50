import { describe, expect, it } from 'vitest';
import { SESSION_ENDING_MS, sessionPhase } from '../client/session-expiry.ts';

const now = Date.parse('2026-01-01T12:00:00.000Z');
const at = (offsetMs: number) => new Date(now + offsetMs).toISOString();

describe("the session's token expiry", () => {
  it('warns shortly before the token expires, and ends the session once it has', () => {
    expect(sessionPhase(at(SESSION_ENDING_MS + 1), now)).toBe('active');
    expect(sessionPhase(at(SESSION_ENDING_MS), now)).toBe('ending');
    expect(sessionPhase(at(1), now)).toBe('ending');
    expect(sessionPhase(at(0), now)).toBe('ended');
    expect(sessionPhase('not a time', now)).toBe('ended');
  });
});
