import { describe, expect, it } from 'vitest';
import { EXPIRING_SOON_MS, roomHeadState } from '../client/room-head-state.ts';

const now = Date.parse('2026-01-01T12:00:00.000Z');
const at = (offsetMs: number) => new Date(now + offsetMs).toISOString();

describe("the open room's head", () => {
  it('closes sending once expiresAt has passed, before the worker announces room-expired', () => {
    // The server API closed the room (room-lifetime-changed to now), or the sweep lags: every
    // send would be refused ROOM_EXPIRED, so the composer is off under the expired banner.
    expect(roomHeadState({ expiresAt: at(-1), expired: false, left: false, guest: false }, now)).toEqual({ banner: 'expired', closed: true });
    expect(roomHeadState({ expiresAt: at(0), expired: false, left: true, guest: false }, now)).toEqual({ banner: 'expired', closed: true });
  });

  it('warns before the expiry and keeps sending open', () => {
    expect(roomHeadState({ expiresAt: at(EXPIRING_SOON_MS), expired: false, left: false, guest: false }, now)).toEqual({ banner: 'expiring', closed: false });
    expect(roomHeadState({ expiresAt: at(EXPIRING_SOON_MS + 1), expired: false, left: false, guest: false }, now)).toEqual({ banner: null, closed: false });
  });

  it('shows a room left or expired closed', () => {
    expect(roomHeadState({ expiresAt: at(3_600_000), expired: false, left: true, guest: false }, now)).toEqual({ banner: 'left', closed: true });
    expect(roomHeadState({ expiresAt: at(3_600_000), expired: true, left: true, guest: false }, now)).toEqual({ banner: 'expired', closed: true });
  });
});

describe("a guest's room", () => {
  it('is read only, with the guest banner, until it expires', () => {
    expect(roomHeadState({ expiresAt: at(3_600_000), expired: false, left: false, guest: true }, now)).toEqual({ banner: 'guest', closed: true });
    expect(roomHeadState({ expiresAt: at(-1), expired: false, left: false, guest: true }, now)).toEqual({ banner: 'expired', closed: true });
  });
});
