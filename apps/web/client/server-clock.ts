/**
 * The server's clock as the page sees it. Expiry (`expiresAt`) is the server's time: a page
 * whose clock runs minutes ahead would count a room down, and close its composer, before the
 * server does; one that runs behind would keep it open while the server refuses every send.
 * Each REST answer's `Date` header gives the offset. No DOM and no network: unit-tested in
 * apps/web/test.
 */

/** Offsets below this are noise (the header's one-second resolution, the trip): taken as none. */
export const CLOCK_NOISE_MS = 2000;

/**
 * The server's clock minus the page's, from a `Date` header received at `receivedAt` for a
 * request sent at `sentAt` (local times); null when the header is missing or unreadable.
 */
export function clockOffsetMs(dateHeader: string | null, sentAt: number, receivedAt: number): number | null {
  const server = dateHeader ? Date.parse(dateHeader) : Number.NaN;
  if (Number.isNaN(server)) return null;
  // Stamped somewhere in the trip and cut to the second: its middle is the best guess.
  const offset = server + 500 - (sentAt + receivedAt) / 2;
  return Math.abs(offset) < CLOCK_NOISE_MS ? 0 : Math.round(offset);
}
