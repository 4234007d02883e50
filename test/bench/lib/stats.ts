import { readFileSync } from 'node:fs';

/** Grows as needed up to `cap` samples; beyond that, keeps a uniform reservoir. */
export class Samples {
  private data: Float64Array;
  private n = 0;
  private seen = 0;
  constructor(private readonly cap = 2_000_000) {
    this.data = new Float64Array(Math.min(cap, 65_536));
  }
  add(value: number): void {
    this.seen++;
    if (this.n < this.cap) {
      if (this.n === this.data.length) {
        const bigger = new Float64Array(Math.min(this.cap, this.data.length * 2));
        bigger.set(this.data);
        this.data = bigger;
      }
      this.data[this.n++] = value;
      return;
    }
    const slot = Math.floor(Math.random() * this.seen);
    if (slot < this.cap) this.data[slot] = value;
  }
  get count(): number {
    return this.seen;
  }
  summary(): Percentiles {
    return percentiles(this.data.subarray(0, this.n));
  }
}

export interface Percentiles {
  n: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

export function percentiles(values: ArrayLike<number>): Percentiles {
  const sorted = Float64Array.from(values).sort();
  const at = (q: number) => (sorted.length === 0 ? Number.NaN : (sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN));
  return { n: sorted.length, p50: at(0.5), p95: at(0.95), p99: at(0.99), max: sorted.length ? (sorted[sorted.length - 1] ?? Number.NaN) : Number.NaN };
}

export function median(values: number[]): number {
  const finite = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (finite.length === 0) return Number.NaN;
  const mid = Math.floor(finite.length / 2);
  return finite.length % 2 ? (finite[mid] ?? Number.NaN) : ((finite[mid - 1] ?? 0) + (finite[mid] ?? 0)) / 2;
}

export function spread(values: number[]): [number, number] {
  const finite = values.filter((v) => Number.isFinite(v));
  return finite.length ? [Math.min(...finite), Math.max(...finite)] : [Number.NaN, Number.NaN];
}

const TICKS = 100; // USER_HZ on Linux

/** utime + stime of a process in microseconds, from /proc/<pid>/stat; 0 if it is gone. */
export function cpuMicros(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state); utime is field 14, stime field 15.
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    return ((utime + stime) * 1e6) / TICKS;
  } catch {
    return 0;
  }
}

/** [user, system] microseconds, for the kernel share. */
export function cpuSplitMicros(pid: number): [number, number] {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return [(Number(fields[11]) * 1e6) / TICKS, (Number(fields[12]) * 1e6) / TICKS];
  } catch {
    return [0, 0];
  }
}

export function rssBytes(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const match = /VmRSS:\s+(\d+) kB/.exec(status);
    return match ? Number(match[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

export const fmt = (value: number, digits = 1) => (Number.isFinite(value) ? value.toFixed(digits) : 'n/a');
export const fmtInt = (value: number) => (Number.isFinite(value) ? Math.round(value).toLocaleString('en-US') : 'n/a');
