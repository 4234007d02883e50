/**
 * infra/nginx.conf in Debian's real nginx, in front of two real gateway processes (issue 19
 * point 2, issue 18 point 2): websocket upgrades, round robin, the hour-long websocket
 * timeouts, X-Forwarded-For as the gateway reads it, and no token in any log line, nginx's or
 * the gateways'. The gateways are processes (not in-process pods) so that their own pino
 * output, at trace level, can be read whole.
 */
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Redis } from 'ioredis';
import { io, type Socket } from 'socket.io-client';
import {
  freePort,
  killAllProcesses,
  makeUser,
  sleep,
  spawnGateway,
  uniquePrefix,
  type GatewayProcess,
  type TestUser,
} from '@chat/testing';
import { startNginx, type RunningNginx } from './nginx-process.ts';

let prefix: string;
let pods: GatewayProcess[] = [];
let nginx: RunningNginx | undefined;
const sockets: Socket[] = [];

beforeAll(async () => {
  prefix = uniquePrefix('edge');
  const cluster = { databaseUrl: inject('databaseUrl'), redisUrl: inject('redisUrl'), redisPrefix: prefix, busClusterNodes: inject('busClusterNodes') || null };
  // trace: every line a gateway can write is written, so the absence of tokens means something.
  pods = await Promise.all(
    ['edge-a', 'edge-b'].map((name) => spawnGateway(cluster, { LOG_LEVEL: 'trace', POD_NAME: name })),
  );
  nginx = await startNginx({ port: await freePort(), upstreams: pods.map((pod) => new URL(pod.url).host) });
}, 120_000);

afterAll(async () => {
  for (const socket of sockets) socket.close();
  await nginx?.stop();
  await killAllProcesses();
  const redis = new Redis(inject('redisUrl'));
  try {
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length > 0) await redis.del(...keys);
  } finally {
    redis.disconnect();
  }
});

/** A socket.io-client (websocket transport only) through nginx; resolves once connected. */
async function connectThrough(baseUrl: string, options: Parameters<typeof io>[1] = {}): Promise<Socket> {
  const socket = io(`${baseUrl}/socket`, { transports: ['websocket'], reconnection: false, forceNew: true, ...options });
  sockets.push(socket);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('connect_error', reject);
  });
  return socket;
}

/**
 * Handshake options that put the token in the URL under `name` exactly as written (say
 * `tok%65n`): socket.io-client percent-encodes `query` keys itself, so the parameter rides in
 * the engine's path instead (`…/?tok%65n=<jwt>&EIO=4&x=?EIO=4&transport=websocket`).
 */
const tokenInUrlAs = (name: string, token: string) => ({
  path: `/socket.io/?${name}=${token}&EIO=4&x=`,
  addTrailingSlash: false,
});

async function connectionsPerPod(): Promise<number[]> {
  return Promise.all(
    pods.map(async (pod) => {
      const text = await (await fetch(`${pod.url}/metrics`)).text();
      return Number(/^chat_connections_total (\d+)/m.exec(text)?.[1] ?? Number.NaN);
    }),
  );
}

/** Waits (bounded) until `read()` satisfies `done`, then returns it. */
async function waitFor(read: () => string, done: (text: string) => boolean, what: string): Promise<string> {
  for (let i = 0; i < 100; i++) {
    const text = read();
    if (done(text)) return text;
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}:\n${read().slice(-2000)}`);
}

/** Log lines that contain every one of `needles`. */
const lines = (text: string, ...needles: string[]) =>
  text.split('\n').filter((line) => needles.every((needle) => line.includes(needle))).length;

function expectNoToken(where: string, text: string, users: TestUser[]) {
  for (const { token } of users) {
    const [header, payload, signature] = token.split('.');
    expect(text, where).not.toContain(token);
    expect(text, where).not.toContain(`${header}.${payload}`);
    expect(text, where).not.toContain(signature!);
  }
}

describe('infra/nginx.conf in a real nginx', () => {
  it('passes websocket upgrades and round-robins the handshakes over both gateways', async () => {
    const user = await makeUser('라운드로빈');
    const before = await connectionsPerPod();
    for (let i = 0; i < 4; i++) await connectThrough(nginx!.url, { auth: { token: user.token } });
    const after = await connectionsPerPod();
    const landed = after.map((count, index) => count - before[index]!);
    // One nginx worker, plain round robin: the four handshakes alternate between the pods.
    expect(landed).toEqual([2, 2]);
  });

  it('gives the Socket.IO location an hour of websocket silence each way', () => {
    // The configuration nginx runs: the location that '/socket.io/' falls into (the longest
    // matching prefix; infra/nginx.conf has no regex locations) and what it sets.
    const conf = nginx!.conf.replace(/#.*$/gm, '');
    expect(conf).not.toMatch(/location\s+~/);
    const locations = [...conf.matchAll(/location\s+(=\s*)?(\S+)\s*\{([^}]*)\}/g)]
      .filter((match) => !match[1] && '/socket.io/'.startsWith(match[2]!))
      .sort((a, b) => b[2]!.length - a[2]!.length);
    const body = locations[0]?.[3] ?? '';
    expect(body).toMatch(/proxy_pass http:\/\/gateways;/);
    expect(body).toMatch(/proxy_set_header Upgrade \$http_upgrade;/);
    expect(body).toMatch(/proxy_read_timeout 3600s;/);
    expect(body).toMatch(/proxy_send_timeout 3600s;/);
  });

  it("gives the gateway nginx's view of the client's address, not the X-Forwarded-For the client wrote", async () => {
    const response = await fetch(`${nginx!.url}/api/rooms`, { headers: { 'x-forwarded-for': '198.51.100.7' } });
    expect(response.status).toBe(200);
    // A guest's HTTP rate-limit budget is keyed by the address the gateway believes.
    const redis = new Redis(inject('redisUrl'));
    try {
      const keys = await redis.keys(`${prefix}:http-rate:*`);
      expect(keys.some((key) => key.endsWith(':a:127.0.0.1'))).toBe(true);
      expect(keys.filter((key) => key.includes('198.51.100.7'))).toEqual([]);
    } finally {
      redis.disconnect();
    }
  });

  it('logs no token, in nginx or in the gateways, whether the name is token or tok%65n', async () => {
    const alice = await makeUser('토큰로그');
    const from = nginx!.accessLog().length;
    // The handshake takes the token from the query string, also under an encoded name.
    const viaQuery = await connectThrough(nginx!.url, { query: { token: alice.token } });
    const viaEncoded = await connectThrough(nginx!.url, tokenInUrlAs('tok%65n', alice.token));
    const viaEncodedT = await connectThrough(nginx!.url, tokenInUrlAs('%74oken', alice.token));
    for (const socket of [viaQuery, viaEncoded, viaEncodedT]) socket.close();
    // REST requests carrying the token in their query strings (the gateways log their URLs).
    for (const name of ['token', 'tok%65n', '%74oken', 'access_token']) {
      expect((await fetch(`${nginx!.url}/api/rooms?${name}=${alice.token}`)).status).toBe(200);
    }

    // A websocket's line is written when it closes.
    const access = await waitFor(
      () => nginx!.accessLog().slice(from),
      (text) => lines(text, 'GET /socket.io/', '" 101 ') === 3 && lines(text, 'GET /api/rooms', '" 200 ') === 4,
      'the access log lines of these requests',
    );
    expectNoToken('nginx access log', access, [alice]);
    expectNoToken('nginx error log', nginx!.errorLog(), [alice]);
    for (const pod of pods) {
      expect(pod.output()).toContain('incoming request');
      expectNoToken(`gateway ${pod.url}`, pod.output(), [alice]);
    }
  });

  it('logs no token when the gateway behind it is down', async () => {
    // Another nginx on the same file, in front of a port where nothing listens: nginx's own
    // error lines quote the request line (and the upstream URL), query string included.
    const bob = await makeUser('업스트림다운');
    const down = await startNginx({ port: await freePort(), upstreams: [`127.0.0.1:${await freePort()}`, `127.0.0.1:${await freePort()}`] });
    try {
      for (const name of ['token', 'tok%65n']) {
        const response = await fetch(`${down.url}/socket.io/?EIO=4&transport=websocket&${name}=${bob.token}`);
        expect(response.status).toBe(502);
      }
      const access = await waitFor(down.accessLog, (text) => lines(text, 'GET /socket.io/', '" 502 ') === 2, 'the 502 lines');
      expectNoToken('nginx access log (gateway down)', access, [bob]);
      expectNoToken('nginx error log (gateway down)', down.errorLog(), [bob]);
      // What the error log no longer says, the access log does.
      expect(lines(access, 'upstream_status=502')).toBe(2);
    } finally {
      await down.stop();
    }
  });
});
