import { readdirSync, readFileSync } from 'node:fs';

/**
 * On-CPU time of a whole process in microseconds, summed over its threads' `schedstat` (ns
 * resolution). `/proc/<pid>/stat` counts in 10 ms ticks: over a few seconds an idle pod's figure
 * would be 0 or 10 ms at random, far coarser than the sub-microsecond-per-message figures the
 * scaling bench compares. Reading /proc costs the measured process nothing (a /metrics scrape
 * would show up in its own CPU). 0 if the process is gone.
 */
export function taskCpuMicros(pid: number): number {
  let nanos = 0;
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return 0;
  }
  for (const task of tasks) {
    try {
      // "<on-cpu ns> <run-queue wait ns> <timeslices>"
      const text = readFileSync(`/proc/${pid}/task/${task}/schedstat`, 'utf8');
      nanos += Number(text.slice(0, text.indexOf(' ')));
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return nanos / 1000;
}

export function sumTaskCpuMicros(pids: readonly number[]): number {
  return pids.reduce((sum, pid) => sum + taskCpuMicros(pid), 0);
}

/**
 * Bytes a process has read through read-like syscalls (`rchar` of /proc/<pid>/io): for a pod, what
 * its sockets brought in, the bus's deliveries included. 0 if the process is gone.
 */
export function bytesRead(pid: number): number {
  try {
    const match = /^rchar: (\d+)/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'));
    return match ? Number(match[1]) : 0;
  } catch {
    return 0;
  }
}
