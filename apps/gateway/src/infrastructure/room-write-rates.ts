/**
 * How many messages per second this pod has been writing to each room, and to all rooms
 * together: a sliding-window estimate (the current second's count plus the previous second's,
 * weighted by how much of it the window still covers), as rate limiters estimate rates. Two maps
 * of the rooms written in the last two seconds: memory follows the active rooms, not every room
 * ever written.
 */
export class RoomWriteRates {
  private current = new Map<string, number>();
  private previous = new Map<string, number>();
  private currentTotal = 0;
  private previousTotal = 0;
  private windowStart: number;

  constructor(
    private readonly windowMs = 1000,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.windowStart = now();
  }

  record(roomId: string): void {
    this.roll();
    this.current.set(roomId, (this.current.get(roomId) ?? 0) + 1);
    this.currentTotal++;
  }

  perSecond(roomId: string): number {
    this.roll();
    return this.estimate(this.current.get(roomId) ?? 0, this.previous.get(roomId) ?? 0);
  }

  /** Every room's messages together. */
  totalPerSecond(): number {
    this.roll();
    return this.estimate(this.currentTotal, this.previousTotal);
  }

  /** Counts read after `roll()`. */
  private estimate(current: number, previous: number): number {
    const elapsed = (this.now() - this.windowStart) / this.windowMs;
    return ((current + previous * Math.max(0, 1 - elapsed)) * 1000) / this.windowMs;
  }

  private roll(): void {
    const now = this.now();
    if (now - this.windowStart < this.windowMs) return;
    // A whole window or more without a roll: the previous one is the one just ended, or empty.
    const adjacent = now - this.windowStart < 2 * this.windowMs;
    this.previous = adjacent ? this.current : new Map();
    this.previousTotal = adjacent ? this.currentTotal : 0;
    this.current = new Map();
    this.currentTotal = 0;
    this.windowStart = now - ((now - this.windowStart) % this.windowMs);
  }
}
