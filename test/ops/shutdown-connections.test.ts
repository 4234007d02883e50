import { connect as tcpConnect, type Socket } from 'node:net';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { killAllProcesses, spawnGateway, uniquePrefix } from '@chat/testing';

/**
 * SIGTERM with a connection whose peer never finishes (here a request whose headers never end;
 * a websocket whose client never answers the close handshake does the same): the shutdown must
 * not wait for it. It did: Socket.IO's close waits for the HTTP server's, which waits for every
 * connection, so the gateway ran into SHUTDOWN_TIMEOUT_MS and exited 1 (test/infra/bundle.test.ts
 * saw its gateway still closing 15 s after SIGTERM, one connection open).
 */

afterAll(async () => {
  await killAllProcesses();
});

describe('SIGTERM with a connection that never finishes', () => {
  it('closes it after a grace and exits 0 with "stopped"', { timeout: 90_000 }, async () => {
    const cluster = { databaseUrl: inject('databaseUrl'), redisUrl: inject('redisUrl'), redisPrefix: uniquePrefix('shutdown'), busClusterNodes: inject('busClusterNodes') || null };
    // The shutdown bound well under the kill's below: a hang shows as exit code 1, not as a timeout.
    const gateway = await spawnGateway(cluster, { DRAIN_WINDOW_MS: '0', SHUTDOWN_TIMEOUT_MS: '15000', LOG_LEVEL: 'info' });
    const { port } = new URL(gateway.url);
    const stuck: Socket = tcpConnect(Number(port), '127.0.0.1');
    stuck.on('error', () => undefined);
    const closedByServer = new Promise<void>((resolve) => stuck.once('close', () => resolve()));
    await new Promise<void>((resolve) => stuck.once('connect', () => resolve()));
    // A request begun, its headers never ended: to Node's HTTP server not an idle connection.
    await new Promise<void>((resolve) => stuck.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n', () => resolve()));
    try {
      await gateway.kill('SIGTERM', 40_000);
      expect(gateway.child.exitCode, gateway.output().slice(-2000)).toBe(0);
      expect(gateway.output()).toContain('"msg":"stopped"');
      await closedByServer;
    } finally {
      stuck.destroy();
    }
  });
});
