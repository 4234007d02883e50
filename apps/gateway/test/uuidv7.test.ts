import { describe, expect, it } from 'vitest';
import { uuidv7 } from '../src/lib/uuidv7.ts';

describe('uuidv7', () => {
  it('is an RFC 9562 version 7 UUID whose first 48 bits are the milliseconds given', () => {
    const at = Date.UTC(2026, 10, 29, 12, 34, 56, 789);
    const id = uuidv7(at);
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(Number.parseInt(id.slice(0, 8) + id.slice(9, 13), 16)).toBe(at);
  });

  it('differs in its random bits between ids of the same millisecond', () => {
    const at = Date.now();
    const ids = new Set(Array.from({ length: 10_000 }, () => uuidv7(at)));
    expect(ids.size).toBe(10_000);
  });

  it('sorts by time across milliseconds', () => {
    expect(uuidv7(1_000) < uuidv7(1_001)).toBe(true);
    expect(uuidv7(0xffffffff) < uuidv7(0x100000000)).toBe(true);
  });
});
