/**
 * The benchmark's load generator: its own process, driven over IPC by run.ts, so its CPU is
 * never mixed with the servers' and it can be measured on its own. Tokens are minted here
 * from BENCH_JWT_SECRET (never sent over IPC, never printed).
 */
import { ClientGroup, type ClientSpec } from './lib/driver.ts';
import { signHs256 } from './lib/jwt.ts';

export type LoadgenSpec = { url: string; roomId: string | null } & ({ sub: string; nickname?: string } | { bareRoom: string | null });

export type LoadgenRequest =
  | { id: number; cmd: 'open'; group: string; namespace: string; specs: LoadgenSpec[]; concurrency: number; deadlineMs?: number }
  | { id: number; cmd: 'start'; group: string; rate: number; maxOutstanding: number }
  | { id: number; cmd: 'mark'; group: string }
  | { id: number; cmd: 'stop'; group: string }
  | { id: number; cmd: 'close'; group: string }
  | { id: number; cmd: 'exit' };

const secret = process.env.BENCH_JWT_SECRET ?? '';
const groups = new Map<string, ClientGroup>();

function toClientSpec(spec: LoadgenSpec): ClientSpec {
  if ('sub' in spec) {
    return { url: spec.url, roomId: spec.roomId, auth: { token: signHs256(secret, { sub: spec.sub, ...(spec.nickname === undefined ? {} : { nickname: spec.nickname }), expiresInSeconds: 3600 }) } };
  }
  return { url: spec.url, roomId: spec.roomId, auth: spec.bareRoom ? { room: spec.bareRoom } : {} };
}

function group(name: string): ClientGroup {
  const found = groups.get(name);
  if (!found) throw new Error(`no group ${name}`);
  return found;
}

async function handle(request: LoadgenRequest): Promise<unknown> {
  switch (request.cmd) {
    case 'open': {
      const created = new ClientGroup(request.specs.map(toClientSpec), request.namespace);
      groups.set(request.group, created);
      return created.open(request.concurrency, undefined, request.deadlineMs);
    }
    case 'start':
      group(request.group).start(request.rate, request.maxOutstanding);
      return {};
    case 'mark':
      group(request.group).mark();
      return {};
    case 'stop':
      return group(request.group).stop();
    case 'close':
      groups.get(request.group)?.close();
      groups.delete(request.group);
      return {};
    case 'exit':
      for (const g of groups.values()) g.close();
      setTimeout(() => process.exit(0), 200);
      return {};
  }
}

process.on('message', (raw) => {
  const request = raw as LoadgenRequest;
  handle(request).then(
    (result) => process.send?.({ id: request.id, ok: true, result }),
    (error: unknown) => process.send?.({ id: request.id, ok: false, error: String((error as Error)?.message ?? error) }),
  );
});
process.on('disconnect', () => process.exit(0));
