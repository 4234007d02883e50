/**
 * `pnpm test:containers`: the images and the compose stack, for real, on a Docker engine.
 *
 * Builds the local base images (cached; see local-bases.ts), builds infra/Dockerfile's three
 * targets on them, starts infra/docker-compose.yml (Postgres, Redis, migration, two gateways,
 * the worker, nginx) under a unique project name on free loopback ports, and then, through nginx:
 * dev login, a room, two clients on different gateways chatting, history, a delete; `docker kill`
 * of one gateway under a steady stream of acknowledged sends (clients reconnect through nginx,
 * every acknowledged message is in the history); `docker stop` of the other (server-draining,
 * readiness off, exit 0 inside the grace period, nothing acknowledged lost). Also /metrics of
 * every app container, and non-root users on read-only root file systems. Removes every
 * container, network and volume it started, also on failure or Ctrl-C (images stay as a cache),
 * and prints a table of the checks. Not part of `pnpm test` (it needs dockerd and minutes).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Socket } from 'socket.io-client';
import { parse as parseYaml } from 'yaml';
import { ChatHttp, connect, emitAck, next, readHistory, send, SteadySender, type NewMessage } from './chat-client.ts';
import { ensureLocalBases, LABEL, localBases } from './local-bases.ts';
import { must, run } from './shell.ts';
import { appImages, appServices, composeCommand, root, Stack } from './stack.ts';

type Gateway = 'gateway-a' | 'gateway-b';
const other = (gateway: Gateway): Gateway => (gateway === 'gateway-a' ? 'gateway-b' : 'gateway-a');

interface Row {
  check: string;
  result: 'ok' | 'FAIL';
  detail: string;
}
const rows: Row[] = [];
const started = Date.now();
const seconds = (since: number) => `${((Date.now() - since) / 1000).toFixed(1)} s`;

/** Runs one check; a failure stops the remaining ones (each builds on the state before it). */
async function check(name: string, body: () => Promise<string>): Promise<void> {
  const at = Date.now();
  process.stdout.write(`… ${name}\n`);
  try {
    const detail = await body();
    rows.push({ check: name, result: 'ok', detail: `${detail} (${seconds(at)})` });
  } catch (error) {
    const detail = error instanceof Error ? error.message : String(error);
    rows.push({ check: name, result: 'FAIL', detail });
    throw error;
  }
}

function expect(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(message);
}

async function poll<T>(what: string, ms: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + ms;
  for (let attempt = 0; attempt < 10_000; attempt++) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) break;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`${what}: not within ${ms} ms`);
}

const composeFile = parseYaml(readFileSync(path.join(root, 'infra/docker-compose.yml'), 'utf8'), { merge: true }) as {
  services: Record<string, { stop_grace_period?: string; environment?: Record<string, string> }>;
};
const graceSeconds = Number(/^(\d+)s$/.exec(composeFile.services['gateway-a']!.stop_grace_period ?? '')?.[1]);
const workerMetricsPort = Number(composeFile.services.worker!.environment!.METRICS_PORT);
/** Long enough that a socket is still open when readiness is probed; shorter than the file's 10 s. */
const DRAIN_WINDOW_MS = 4000;

const sockets: Socket[] = [];
let stack: Stack | null = null;

async function socketsOn(gateway: Gateway): Promise<number> {
  const { status, body } = await stack!.fetchInside(gateway, 3000, '/metrics');
  expect(status === 200, `${gateway} /metrics answered ${status}`);
  return Number(/^chat_connected_sockets (\d+)/m.exec(body)?.[1] ?? NaN);
}

/** Connects a client through nginx and finds, from the pods' socket gauges, where it landed. */
async function connectOn(base: string, token: string, want?: Gateway): Promise<{ socket: Socket; gateway: Gateway }> {
  for (let attempt = 0; attempt < 8; attempt++) {
    const before = { a: await socketsOn('gateway-a'), b: await socketsOn('gateway-b') };
    const socket = connect(base, token);
    sockets.push(socket);
    await next(socket, 'connect', 10_000);
    const gateway = await poll('socket gauge', 10_000, async () => {
      const a = await socketsOn('gateway-a');
      const b = await socketsOn('gateway-b');
      if (a + b !== before.a + before.b + 1) return undefined;
      return a > before.a ? 'gateway-a' : 'gateway-b';
    });
    if (!want || gateway === want) return { socket, gateway };
    socket.disconnect();
    await poll('socket gauge after disconnect', 10_000, async () =>
      (await socketsOn('gateway-a')) + (await socketsOn('gateway-b')) === before.a + before.b ? true : undefined,
    );
  }
  throw new Error(`no client landed on ${want} in 8 connections through nginx`);
}

/**
 * Every acknowledged message is in the history, once. Read from a running gateway's own port
 * (inside its container): the database is what is checked, not nginx's failover.
 */
async function assertNothingLost(gateway: Gateway, roomId: string, senders: SteadySender[]): Promise<string> {
  const history = await readHistory(roomId, async (pathname) => {
    const { status, body } = await stack!.fetchInside(gateway, 3000, pathname);
    return { status, body: status === 200 ? JSON.parse(body) : body };
  });
  const stored = new Map(history.map((message) => [message.messageId, message.content]));
  expect(stored.size === history.length, 'history holds a message twice');
  let acked = 0;
  for (const sender of senders) {
    for (const [clientMessageId, messageId] of sender.acked) {
      acked++;
      expect(stored.get(messageId) === clientMessageId, `acknowledged ${clientMessageId} (${messageId}) is not in the history`);
    }
  }
  const retries = senders.reduce((sum, sender) => sum + sender.failures, 0);
  return `${acked} acknowledged sends all in the history (${history.length} stored; ${retries} retried sends)`;
}

/** The classic builder's id of the `build` stage: the last layer before the runtime stage. */
function buildStageImage(output: string): string | undefined {
  const beforeRuntime = output.split(/^Step \d+\/\d+ : FROM \S+ AS runtime$/m)[0] ?? '';
  return [...beforeRuntime.matchAll(/^ ---> ([0-9a-f]{12})$/gm)].at(-1)?.[1];
}

/**
 * Each source change leaves the previous `build` stage (the workspace and its dependencies,
 * ~0.5 GB) untagged. Removes untagged images built on the local bases (they inherit the
 * bases' label), except this run's build stage, kept as the cache of the next run.
 */
async function removeOldBuilds(keep: string | undefined): Promise<number> {
  const listed = await must('docker', ['images', '-q', '--filter', 'dangling=true', '--filter', `label=${LABEL}`]);
  const stale = [...new Set(listed.split('\n').map((id) => id.trim()).filter((id) => id && !(keep && id.startsWith(keep))))];
  let removed = 0;
  for (const id of stale) if ((await run('docker', ['rmi', id], { timeoutMs: 60_000 })).code === 0) removed++;
  return removed;
}

async function main(): Promise<void> {
  await check('dockerd answers', async () => {
    const version = await run('docker', ['version', '--format', '{{.Server.Version}}'], { timeoutMs: 20_000 });
    expect(version.code === 0, `docker version failed: ${version.stderr.trim() || version.stdout.trim()}`);
    return `server ${version.stdout.trim()}`;
  });
  let compose: string[] | null = null;
  await check('compose is installed', async () => {
    compose = await composeCommand();
    expect(compose, "neither 'docker compose' nor 'docker-compose' is installed");
    return compose.join(' ');
  });

  await check('local base images (no registry)', async () => {
    const report = await ensureLocalBases((line) => process.stdout.write(`  ${line}\n`));
    return `built: ${report.built.join(', ') || 'none'}; cached: ${report.cached.join(', ') || 'none'}`;
  });

  await check('infra/Dockerfile builds gateway, worker, migrate', async () => {
    let buildStage: string | undefined;
    for (const [target, tag] of Object.entries(appImages)) {
      const output = await must('docker', ['build', '-f', 'infra/Dockerfile', '--build-arg', `NODE_IMAGE=${localBases.node}`,
        '--target', target, '-t', tag, '.'], { cwd: root, timeoutMs: 900_000 });
      buildStage ??= buildStageImage(output);
    }
    const removed = await removeOldBuilds(buildStage);
    return `NODE_IMAGE=${localBases.node}; ${removed} stale build image(s) removed`;
  });

  stack = new Stack(compose!);
  await stack.prepare({ drainWindowMs: DRAIN_WINDOW_MS });
  stack.startReaper();
  const base = `http://127.0.0.1:${stack.nginxPort}`;
  const http = new ChatHttp(base);

  await check('compose up: postgres, redis, migrate, 2 gateways, worker, nginx', async () => {
    await stack!.up();
    const migrate = await stack!.inspect('migrate');
    await poll('both gateways healthy', 120_000, async () => {
      const states = await Promise.all((['gateway-a', 'gateway-b'] as const).map((g) => stack!.inspect(g)));
      return states.every((s) => s.State.Health?.Status === 'healthy') ? true : undefined;
    });
    await poll('nginx answers /readyz', 30_000, async () => ((await fetch(`${base}/readyz`)).status === 200 ? true : undefined));
    expect(migrate.State.Status === 'exited' && migrate.State.ExitCode === 0, `migrate: ${migrate.State.Status} ${migrate.State.ExitCode}`);
    return `project ${stack!.project}; migrate exited 0; nginx on 127.0.0.1:${stack!.nginxPort}`;
  });

  await check('published ports are on 127.0.0.1 only', async () => {
    const published: string[] = [];
    for (const service of ['postgres', 'redis', 'nginx'] as const) {
      for (const bindings of Object.values((await stack!.inspect(service)).HostConfig.PortBindings ?? {})) {
        for (const binding of bindings ?? []) {
          expect(binding.HostIp === '127.0.0.1', `${service} publishes on ${binding.HostIp || 'every interface'}`);
          published.push(`${service}:${binding.HostPort}`);
        }
      }
    }
    return published.join(', ');
  });

  const alice = await http.login('alice');
  const bob = await http.login('bob');
  let roomId = '';
  let aliceOn: Gateway = 'gateway-a';
  let aliceSocket!: Socket;
  let bobSocket!: Socket;

  await check('through nginx: login, room, chat across gateways, history, delete', async () => {
    roomId = await http.createRoom(alice.accessToken, 'containers');
    const a = await connectOn(base, alice.accessToken);
    const b = await connectOn(base, bob.accessToken, other(a.gateway));
    aliceOn = a.gateway;
    aliceSocket = a.socket;
    bobSocket = b.socket;
    for (const socket of [aliceSocket, bobSocket]) {
      const ack = await emitAck<{ ok: boolean }>(socket, 'join-room', { roomId });
      expect(ack.ok, 'join-room refused');
    }
    const bobHears = next<NewMessage>(bobSocket, 'new-message', 10_000, (m) => m.content === 'hello from alice');
    const hello = await send(aliceSocket, roomId, 'hello from alice');
    await bobHears;
    const aliceHears = next<NewMessage>(aliceSocket, 'new-message', 10_000, (m) => m.content === 'hello from bob');
    await send(bobSocket, roomId, 'hello from bob');
    await aliceHears;
    const history = await http.history(roomId);
    expect(history.map((m) => m.content).join('|') === 'hello from bob|hello from alice', `history: ${history.map((m) => m.content).join('|')}`);
    const bobSeesDelete = next<{ messageId: string }>(bobSocket, 'message-deleted', 10_000, (m) => m.messageId === hello.messageId);
    const deleted = await http.request<{ success: boolean }>('DELETE', `/api/messages/${hello.messageId}`, alice.accessToken);
    expect(deleted.status === 200 && deleted.body.success, `DELETE answered ${deleted.status}`);
    await bobSeesDelete;
    const after = await http.history(roomId);
    expect(after.length === 1 && after[0]!.content === 'hello from bob', 'the deleted message is still in the history');
    return `alice on ${a.gateway}, bob on ${b.gateway}; both heard each other; delete reached bob`;
  });

  await check('/metrics of every app container', async () => {
    const found: string[] = [];
    for (const gateway of ['gateway-a', 'gateway-b'] as const) {
      const { status, body } = await stack!.fetchInside(gateway, 3000, '/metrics');
      expect(status === 200, `${gateway} /metrics answered ${status}`);
      for (const family of ['chat_connected_sockets', 'chat_messages_persisted_total', 'nodejs_eventloop_lag_seconds']) {
        expect(body.includes(`# TYPE ${family} `), `${gateway} /metrics lacks ${family}`);
      }
      found.push(`${gateway}:3000`);
    }
    const worker = await stack!.fetchInside('worker', workerMetricsPort, '/metrics');
    expect(worker.status === 200 && worker.body.includes('# TYPE chat_worker_queue_depth '), `worker /metrics: ${worker.status}`);
    found.push(`worker:${workerMetricsPort}`);
    const front = await fetch(`${base}/metrics`);
    expect(front.status === 404, `nginx serves /metrics (${front.status})`);
    return `${found.join(', ')}; nginx answers 404 for /metrics`;
  });

  await check('app containers non-root, read-only root fs; nginx, Postgres, Redis read-only too', async () => {
    for (const service of appServices) {
      const info = await stack!.inspect(service);
      expect(info.Config.User === '1000:1000', `${service} runs as ${info.Config.User || 'root'}`);
      expect(info.HostConfig.ReadonlyRootfs, `${service} has a writable root fs`);
      if (service === 'migrate') continue; // exited; its settings are checked above
      const probe = await stack!.node(service, [
        "const fs = require('fs');",
        "let root = 'writable'; try { fs.writeFileSync('/app/probe', 'x'); } catch (e) { root = e.code; }",
        "fs.writeFileSync('/tmp/probe', 'x');",
        "const uid = fs.readFileSync('/proc/1/status', 'utf8').match(/^Uid:\\s+(\\d+)/m)[1];",
        'process.stdout.write(JSON.stringify({ uid: process.getuid(), pid1: uid, root }));',
      ].join(' '));
      expect(probe.code === 0, `${service}: probe failed: ${probe.stderr.trim()}`);
      const seen = JSON.parse(probe.stdout) as { uid: number; pid1: string; root: string };
      expect(seen.uid === 1000 && seen.pid1 === '1000', `${service}: uid ${seen.uid}, pid 1 uid ${seen.pid1}`);
      expect(seen.root === 'EROFS', `${service}: writing /app gave ${seen.root}`);
    }
    for (const service of ['nginx', 'postgres', 'redis'] as const) {
      const info = await stack!.inspect(service);
      expect(info.HostConfig.ReadonlyRootfs, `${service} has a writable root fs`);
    }
    return `${appServices.join(', ')}: uid 1000, writes to / fail with EROFS, /tmp is writable; nginx, postgres, redis: read-only root fs`;
  });

  const killed = aliceOn;
  const survivor = other(killed);
  const killSenders = [new SteadySender('alice', aliceSocket, roomId), new SteadySender('bob', bobSocket, roomId)];
  await check(`docker kill ${killed} under acknowledged sends: reconnect through nginx, nothing lost`, async () => {
    for (const sender of killSenders) sender.start();
    try {
      await Promise.all(killSenders.map((sender) => sender.waitFor(20, 20_000)));
      const reconnected = next(aliceSocket, 'connect', 30_000);
      const killedAt = Date.now();
      await must('docker', ['kill', await stack!.id(killed)]);
      await reconnected;
      const reconnectMs = Date.now() - killedAt;
      await Promise.all(killSenders.map((sender) => sender.waitFor(20, 30_000)));
      await Promise.all(killSenders.map((sender) => sender.stop()));
      return `alice reconnected in ${reconnectMs} ms; ${await assertNothingLost(survivor, roomId, killSenders)}`;
    } finally {
      await Promise.all(killSenders.map((sender) => sender.stop()));
    }
  });

  // nginx keeps the dead gateway in its upstream; a request sent there must fail over quickly.
  await check(`nginx while ${killed} is down: no request stalls`, async () => {
    const timings: number[] = [];
    for (let i = 0; i < 4; i++) {
      const at = Date.now();
      const response = await fetch(`${base}/readyz`, { signal: AbortSignal.timeout(8000) }).catch(() => null);
      timings.push(Date.now() - at);
      if (!response || response.status !== 200) {
        throw new Error(`GET /readyz ${response ? `answered ${response.status}` : 'gave no answer within 8 s'} (${timings.join(', ')} ms): ` +
          'a request must not wait on the dead gateway (infra/nginx.conf: proxy_connect_timeout 2s, max_fails=1 fail_timeout=5s)');
      }
    }
    return `4 requests in ${timings.join(', ')} ms`;
  });

  await check(`${killed} started again and healthy`, async () => {
    // `docker kill` counts as a manual stop: `restart: unless-stopped` does not bring it back.
    const state = (await stack!.inspect(killed)).State;
    if (!state.Running) await must('docker', ['start', await stack!.id(killed)]);
    await poll(`${killed} healthy`, 90_000, async () => ((await stack!.inspect(killed)).State.Health?.Status === 'healthy' ? true : undefined));
    return state.Running ? 'restarted by docker' : 'docker start';
  });

  await check(`docker stop ${survivor}: server-draining, readiness off, exit 0 in the grace period, nothing lost`, async () => {
    const senders = [new SteadySender('alice2', aliceSocket, roomId), new SteadySender('bob2', bobSocket, roomId)];
    for (const sender of senders) sender.start();
    try {
      await Promise.all(senders.map((sender) => sender.waitFor(20, 20_000)));
      const onSurvivor = await socketsOn(survivor);
      expect(onSurvivor >= 1, `no client on ${survivor}`);
      const draining = next(bobSocket, 'server-draining', 30_000);
      const bobBack = next(bobSocket, 'connect', 60_000);
      // Watches /readyz from inside the container from before SIGTERM until it stops being 200.
      const readiness = stack!.node(survivor, [
        'const deadline = Date.now() + 60000;',
        "(async () => { while (Date.now() < deadline) { const r = await fetch('http://127.0.0.1:3000/readyz').catch(() => null);",
        "  if (r && r.status !== 200) { process.stdout.write(String(r.status)); return; } await new Promise((s) => setTimeout(s, 50)); } })();",
      ].join(' '), 90_000);
      await new Promise((resolve) => setTimeout(resolve, 1000)); // the watcher is up
      const stopAt = Date.now();
      const stopping = run('docker', ['stop', '-t', String(graceSeconds), await stack!.id(survivor)], { timeoutMs: (graceSeconds + 60) * 1000 });
      await draining;
      const readyStatus = (await readiness).stdout.trim();
      expect(readyStatus === '503', `/readyz during the drain: ${readyStatus || 'never left 200'}`);
      const stopped = await stopping;
      const stopMs = Date.now() - stopAt;
      expect(stopped.code === 0, `docker stop failed: ${stopped.stderr.trim()}`);
      const state = (await stack!.inspect(survivor)).State;
      expect(state.ExitCode === 0 && !state.OOMKilled, `${survivor} exited ${state.ExitCode}${state.OOMKilled ? ' (OOM)' : ''}`);
      expect(stopMs < graceSeconds * 1000, `stop took ${stopMs} ms, grace is ${graceSeconds} s`);
      await bobBack;
      await Promise.all(senders.map((sender) => sender.waitFor(20, 30_000)));
      await Promise.all(senders.map((sender) => sender.stop()));
      return `${onSurvivor} client(s) told; /readyz 503; exit 0 after ${(stopMs / 1000).toFixed(1)} s of ${graceSeconds} s; ${await assertNothingLost(killed, roomId, [...killSenders, ...senders])}`;
    } finally {
      await Promise.all(senders.map((sender) => sender.stop()));
    }
  });
}

let cleaning: Promise<void> | null = null;
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const socket of sockets) socket.disconnect();
    if (!stack) return;
    const at = Date.now();
    const down = await stack.down();
    const left = await stack.leftovers();
    stack.removeFiles();
    stack.stopReaper();
    rows.push({
      check: 'compose down: no container, network or volume left',
      result: down.code === 0 && left.length === 0 ? 'ok' : 'FAIL',
      detail: left.length === 0 ? `removed (${seconds(at)}); base and app images kept as a cache` : `left: ${left.join(', ')}`,
    });
  })();
  return cleaning;
}

function printTable(): void {
  const width = Math.max(...rows.map((row) => row.check.length));
  process.stdout.write(`\npnpm test:containers (${seconds(started)})\n`);
  for (const row of rows) process.stdout.write(`  ${row.result.padEnd(7)} ${row.check.padEnd(width)}  ${row.detail}\n`);
}

// `on`, not `once`: Ctrl-C reaches this process twice (from the terminal and relayed by tsx),
// and a second signal without a listener would end it in the middle of the cleanup.
let signalled = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (signalled) return;
    signalled = true;
    process.stdout.write(`\n${signal}: removing the stack\n`);
    void cleanup().finally(() => {
      printTable();
      process.exit(130);
    });
  });
}

let failed = false;
try {
  await main();
} catch (error) {
  failed = true;
  process.stderr.write(`\n${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
} finally {
  await cleanup();
  printTable();
}
process.exit(failed || rows.some((row) => row.result === 'FAIL') ? 1 : 0);
