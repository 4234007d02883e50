import type { OpenRoom } from './store.ts';

/**
 * What the open room's head says and whether sending is open, at a given time. No DOM: unit-
 * tested in apps/web/test (room-head.ts renders it).
 */

/** The expiring banner shows this long before `expiresAt`. */
export const EXPIRING_SOON_MS = 5 * 60_000;

export type RoomBanner = 'expired' | 'guest' | 'left' | 'expiring';

export function roomHeadState(room: Pick<OpenRoom, 'expiresAt' | 'expired' | 'left' | 'guest'>, now: number): { banner: RoomBanner | null; closed: boolean } {
  const remaining = Date.parse(room.expiresAt) - now;
  // Past `expiresAt` the room is expired whether or not the worker's `room-expired` came yet
  // (PROTOCOL §10): every send would be refused ROOM_EXPIRED, and the sweep may lag or be down.
  if (room.expired || remaining <= 0) return { banner: 'expired', closed: true };
  // A guest reads only: the socket (joining, sending) needs a token (PROTOCOL §1).
  if (room.guest) return { banner: 'guest', closed: true };
  if (room.left) return { banner: 'left', closed: true };
  return { banner: remaining <= EXPIRING_SOON_MS ? 'expiring' : null, closed: false };
}
