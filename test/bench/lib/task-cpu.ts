import { readdirSync, readFileSync } from 'node:fs';

/**
 * One field of a whole process's `schedstat`, summed over its threads, in microseconds (ns
 * resolution): "<on-cpu ns> <run-queue wait ns> <timeslices>". 0 if the process is gone.
 */
function schedstatMicros(pid: number, field: 0 | 1): number {
  let nanos = 0;
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return 0;
  }
  for (const task of tasks) {
    try {
      nanos += Number(readFileSync(`/proc/${pid}/task/${task}/schedstat`, 'utf8').split(' ')[field]);
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return nanos / 1000;
}

/**
 * On-CPU time of a whole process in microseconds, from its threads' `schedstat`.
 * `/proc/<pid>/stat` counts in 10 ms ticks: over a few seconds an idle pod's figure would be 0
 * or 10 ms at random, far coarser than the sub-microsecond-per-message figures the scaling
 * bench compares. Reading /proc costs the measured process nothing (a /metrics scrape would
 * show up in its own CPU). 0 if the process is gone.
 */
export const taskCpuMicros = (pid: number): number => schedstatMicros(pid, 0);

/**
 * Time a whole process's threads spent runnable but waiting for a CPU (the run queue), in
 * microseconds: on a saturated machine, what each hop of a message between processes waits
 * before the process that is to handle it runs.
 */
export const taskRunQueueMicros = (pid: number): number => schedstatMicros(pid, 1);

/**
 * The machine's CPU pressure so far (`some` total of /proc/pressure/cpu, microseconds during
 * which at least one task waited for a CPU); NaN where the kernel has no PSI.
 */
export function cpuPressureMicros(): number {
  try {
    const match = /^some .*total=(\d+)/m.exec(readFileSync('/proc/pressure/cpu', 'utf8'));
    return match ? Number(match[1]) : Number.NaN;
  } catch {
    return Number.NaN;
  }
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
