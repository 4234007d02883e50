import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import type { LoadgenRequest } from '../loadgen.ts';
import { ROOT } from './procs.ts';

/** A request to the load generator; the client numbers it. */
export type LoadgenCommand = LoadgenRequest extends infer R ? (R extends unknown ? Omit<R, 'id'> : never) : never;

interface Reply {
  id: number;
  ok: boolean;
  result?: unknown;
  error?: string;
}

/**
 * The load generator (test/bench/loadgen.ts) in a process of its own, so its CPU is measured
 * apart from the servers', driven by numbered requests and replies over IPC. It mints tokens
 * from `jwtSecret`, which travels in its environment, never over IPC.
 */
export class LoadgenClient {
  private nextId = 0;
  private readonly waiting = new Map<number, (reply: Reply) => void>();

  private constructor(private readonly child: ChildProcess) {
    child.on('message', (raw) => {
      const reply = raw as Reply;
      const waiter = this.waiting.get(reply.id);
      this.waiting.delete(reply.id);
      waiter?.(reply);
    });
  }

  static start(jwtSecret: string): LoadgenClient {
    return new LoadgenClient(
      fork(join(ROOT, 'test/bench/loadgen.ts'), [], {
        execArgv: ['--import', 'tsx'],
        env: { ...process.env, BENCH_JWT_SECRET: jwtSecret },
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      }),
    );
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  request<T>(command: LoadgenCommand, timeoutMs = 120_000): Promise<T> {
    const id = ++this.nextId;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`loadgen ${command.cmd} timed out`));
      }, timeoutMs);
      this.waiting.set(id, (reply) => {
        clearTimeout(timer);
        if (reply.ok) resolve(reply.result as T);
        else reject(new Error(reply.error));
      });
      // With a callback a closed channel (the process stopped, e.g. by an interrupted run's
      // cleanup) fails this request instead of emitting an 'error' nobody handles.
      this.child.send({ ...command, id }, (error) => {
        if (!error) return;
        clearTimeout(timer);
        this.waiting.delete(id);
        reject(error);
      });
    });
  }

  /**
   * Asks it to close its clients and exit; kills it if it does not answer. Resolves once it has
   * exited and its channel is closed, so a request after this fails at once.
   */
  async stop(): Promise<void> {
    const child = this.child;
    const gone = (async () => {
      if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
      if (child.connected) await once(child, 'disconnect');
    })();
    await this.request({ cmd: 'exit' }, 3000).catch(() => undefined);
    child.kill('SIGKILL');
    // An 'error' of the child while it goes must not cut short the cleanup that called this.
    await gone.catch(() => undefined);
  }
}
