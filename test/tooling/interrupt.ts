import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/**
 * Runs `pnpm <script> …args` as a terminal runs it, in a process group of its own, and sends
 * SIGINT to the whole group (what Ctrl-C does) once its output contains `after`: every process
 * of the chain (pnpm, sh, tsx, node) gets the signal, and tsx relays it to the script once more.
 * With `again`: a second Ctrl-C once the output matches it (the script's cleanup under way), as
 * an impatient user presses, or as tsx sends when the script is slow to acknowledge the first.
 * Resolves once the group's leader has exited and its pipes have closed (the script's last word
 * included), with everything it wrote.
 */
export function interruptAfter(
  script: string,
  args: readonly string[],
  after: RegExp,
  options: { again?: RegExp; env?: Record<string, string> } = {},
): Promise<{ output: string; signalled: boolean }> {
  return new Promise((resolve, reject) => {
    const child = spawn('pnpm', [script, ...args], { cwd: ROOT, env: { ...process.env, ...options.env }, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    let signalled = false;
    let again = false;
    const onData = (chunk: Buffer) => {
      output += chunk.toString('utf8');
      if (!signalled && after.test(output)) {
        signalled = true;
        process.kill(-child.pid!, 'SIGINT');
      }
      if (signalled && !again && options.again?.test(output)) {
        again = true;
        // ESRCH: the whole group has exited already.
        try {
          process.kill(-child.pid!, 'SIGINT');
        } catch {}
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('error', reject);
    // 'close': the pipes too, which the script (a grandchild) holds until it exits itself.
    child.once('close', () => resolve({ output, signalled }));
  });
}
