import { readFileSync } from 'node:fs';
import { cpus, freemem, totalmem } from 'node:os';

export type Machine = ReturnType<typeof describeMachine>;

/** What the report says about the host: CPU, memory, Node, open-files limit, load at start. */
export function describeMachine() {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const model = /model name\s*:\s*(.+)/.exec(cpuinfo)?.[1] ?? cpus()[0]?.model ?? 'unknown';
  const mhz = /cpu MHz\s*:\s*(.+)/.exec(cpuinfo)?.[1] ?? '';
  let ulimit = '';
  try {
    ulimit = readFileSync('/proc/self/limits', 'utf8').match(/Max open files\s+(\d+)\s+(\d+)/)?.slice(1).join(' / ') ?? '';
  } catch {
    /* not Linux: left blank */
  }
  return {
    cpu: model.trim(),
    mhz: mhz.trim(),
    nproc: cpus().length,
    memGiB: (totalmem() / 2 ** 30).toFixed(1),
    freeGiB: (freemem() / 2 ** 30).toFixed(1),
    ulimit: ulimit.split(' / ')[0] ?? '',
    ulimitBoth: ulimit,
    node: process.version,
    loadavg: loadAverage(),
    date: new Date().toISOString(),
  };
}

/** /proc/loadavg as it reads: the 1-, 5- and 15-minute averages first. */
export function loadAverage(): string {
  try {
    return readFileSync('/proc/loadavg', 'utf8').trim();
  } catch {
    return '';
  }
}
