/**
 * How many messages per second this pod has been writing to each room: a sliding-window
 * estimate (the current second's count plus the previous second's, weighted by how much of it
 * the window still covers), as rate limiters estimate rates. Two maps of the rooms written in
 * the last two seconds: memory follows the active rooms, not every room ever written.
 */
export class RoomWriteRates {
  private current = new Map<string, number>();
  private previous = new Map<string, number>();
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
  }

  perSecond(roomId: string): number {
    this.roll();
    const elapsed = (this.now() - this.windowStart) / this.windowMs;
    const estimate = (this.current.get(roomId) ?? 0) + (this.previous.get(roomId) ?? 0) * Math.max(0, 1 - elapsed);
    return (estimate * 1000) / this.windowMs;
  }

  private roll(): void {
    const now = this.now();
    if (now - this.windowStart < this.windowMs) return;
    // A whole window or more without a roll: the previous one is the one just ended, or empty.
    this.previous = now - this.windowStart < 2 * this.windowMs ? this.current : new Map();
    this.current = new Map();
    this.windowStart = now - ((now - this.windowStart) % this.windowMs);
  }
}
