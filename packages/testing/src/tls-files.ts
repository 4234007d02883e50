import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * Certificates for TLS on loopback (Redis, Postgres), made with `openssl` in a temporary
 * directory: a CA, a server certificate for 127.0.0.1 and localhost signed by it, a client
 * certificate signed by it (CN `postgres`, for servers that ask for one: Redis by default,
 * Postgres with `clientcert=verify-full`), and a second CA that signed nothing here (a client
 * trusting only it must be refused).
 */
export interface TlsFiles {
  dir: string;
  caFile: string;
  certFile: string;
  keyFile: string;
  clientCertFile: string;
  clientKeyFile: string;
  otherCaFile: string;
  /** redis-server's arguments for TLS on `port` only (the plain port closed); replication and the cluster bus over TLS too. */
  redisArgs(port: number): string[];
  /** The same as lines of a configuration file (a sentinel's). */
  redisConfigLines(port: number): string[];
  /**
   * A new client certificate and key (same CA and CN, another serial) put in place of the old
   * pair, each file by an atomic rename, as a renewal in a mounted Secret lands.
   */
  renewClientCertificate(): Promise<void>;
  /** Node's TLS options for a test's own client (PEM texts). */
  clientOptions(): Promise<{ ca: string; cert: string; key: string }>;
  close(): Promise<void>;
}

async function openssl(dir: string, args: string[]): Promise<void> {
  await run('openssl', args, { cwd: dir });
}

async function makeCa(dir: string, name: string): Promise<void> {
  await openssl(dir, ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', `/CN=${name}`, '-keyout', `${name}.key`, '-out', `${name}.crt`]);
}

async function makeSigned(dir: string, name: string, ca: string, extensions: string, commonName = name): Promise<void> {
  await writeFile(join(dir, `${name}.ext`), `${extensions}\n`);
  await openssl(dir, ['req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${commonName}`, '-keyout', `${name}.key`, '-out', `${name}.csr`]);
  await openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-days', '2', '-extfile', `${name}.ext`, '-out', `${name}.crt`]);
}

export async function makeTlsFiles(): Promise<TlsFiles> {
  const dir = await mkdtemp(join(tmpdir(), 'chat-redis-tls-'));
  try {
    await makeCa(dir, 'ca');
    await makeCa(dir, 'other-ca');
    await makeSigned(dir, 'server', 'ca', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth');
    await makeSigned(dir, 'postgres', 'ca', 'extendedKeyUsage=clientAuth');
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  const file = (name: string) => join(dir, name);
  const settings = (port: number): [string, string][] => [
    ['port', '0'],
    ['tls-port', String(port)],
    ['tls-cert-file', file('server.crt')],
    ['tls-key-file', file('server.key')],
    ['tls-ca-cert-file', file('ca.crt')],
    ['tls-replication', 'yes'],
  ];
  return {
    dir,
    caFile: file('ca.crt'),
    certFile: file('server.crt'),
    keyFile: file('server.key'),
    clientCertFile: file('postgres.crt'),
    clientKeyFile: file('postgres.key'),
    otherCaFile: file('other-ca.crt'),
    redisArgs: (port) => settings(port).flatMap(([name, value]) => [`--${name}`, value]),
    redisConfigLines: (port) => settings(port).map(([name, value]) => `${name} ${value}`),
    async renewClientCertificate() {
      await makeSigned(dir, 'postgres-renewed', 'ca', 'extendedKeyUsage=clientAuth', 'postgres');
      await rename(file('postgres-renewed.key'), file('postgres.key'));
      await rename(file('postgres-renewed.crt'), file('postgres.crt'));
    },
    async clientOptions() {
      const [ca, cert, key] = await Promise.all([file('ca.crt'), file('postgres.crt'), file('postgres.key')].map((path) => readFile(path, 'utf8')));
      return { ca: ca!, cert: cert!, key: key! };
    },
    close: () => rm(dir, { recursive: true, force: true }),
  };
}
