import { describe, expect, it } from 'vitest';
import { RoomWriteRates } from '../../apps/gateway/src/infrastructure/room-write-rates.ts';

/** The write rates that decide which group-commit batches release their locks early, and when a batch waits for company. */
describe('RoomWriteRates', () => {
  it('estimates a room’s messages per second over a sliding second, and forgets rooms gone quiet', () => {
    let now = 0;
    const rates = new RoomWriteRates(1000, () => now);
    for (let i = 0; i < 120; i++) rates.record('busy');
    rates.record('quiet');
    expect(rates.perSecond('busy')).toBe(120);
    expect(rates.perSecond('quiet')).toBe(1);
    expect(rates.perSecond('never')).toBe(0);
    expect(rates.totalPerSecond()).toBe(121);
    // A quarter into the next second: three quarters of the last second still count.
    now = 1250;
    for (let i = 0; i < 10; i++) rates.record('busy');
    expect(rates.perSecond('busy')).toBe(10 + 120 * 0.75);
    expect(rates.totalPerSecond()).toBe(10 + 121 * 0.75);
    // Two quiet seconds later nothing of it is left.
    now = 3300;
    expect(rates.perSecond('busy')).toBe(0);
    expect(rates.perSecond('quiet')).toBe(0);
    expect(rates.totalPerSecond()).toBe(0);
  });
});
