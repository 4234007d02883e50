import { connect, createServer, type Server, type Socket } from 'node:net';
import { freePort } from './ports.ts';

/**
 * A TCP relay to a real Postgres or Redis on a port of its own, for "the server goes away" (or
 * "one pod loses it") without touching the shared server: `cut()` drops every connection and
 * refuses new ones (as a stopped server does), `restore()` relays again on the same port.
 * `replyDelayMs` holds back what the server sends to its clients that long (in order), for "this
 * pod hears the bus late" (a slow path, a busy subscriber). `freeze()` is a blackhole (a network
 * partition, a server that vanished): no socket is closed and no reset sent, but nothing gets
 * through any more, on the connections open and on new ones (accepted, never answered).
 */
export interface TcpRelay {
  /** The server's URL with its host and port replaced by the relay's. */
  url: string;
  cut(): Promise<void>;
  restore(): Promise<void>;
  /**
   * From now on every byte either way is dropped, every socket kept open: its peer hears
   * nothing, no FIN, no RST, whatever the other side does. New connections are accepted and
   * likewise never answered, and never reach the server.
   */
  freeze(): void;
  /**
   * New connections are relayed again. The frozen ones stay frozen (their dropped bytes are
   * gone, as a vanished server's connections never come back): only `cut()` or `close()` ends them.
   */
  thaw(): void;
  /**
   * Holds back what the server sends on the connection whose requests, from now on, carry every
   * one of `texts` (a Postgres Bind carries its parameters as text): from that request on, in
   * order, nothing dropped, until `release()` — "this query has run on the server, and its answer
   * has not reached the client yet". Every other connection goes on as before.
   */
  holdRepliesTo(...texts: string[]): HeldReplies;
  /**
   * The same, from the request that follows the one completing `texts` on: the next statement of
   * a transaction, typically its COMMIT (whose text a prepared statement no longer carries) —
   * "this transaction has committed, and the client does not know yet", no lock held meanwhile.
   */
  holdRepliesAfter(...texts: string[]): HeldReplies;
  close(): Promise<void>;
}

export interface HeldReplies {
  /** Resolves once a reply is held: the query has run. */
  held(): Promise<void>;
  release(): void;
}

interface Hold {
  texts: string[];
  /** Held from the request after the one completing `texts`, once that one is seen (`armed`). */
  next: boolean;
  armed: Set<Socket>;
  asked: Map<Socket, string>;
  held: Set<Socket>;
  sends: (() => void)[];
  onHeld: () => void;
}

export async function startTcpRelay(serverUrl: string, options: { listening?: boolean; replyDelayMs?: number } = {}): Promise<TcpRelay> {
  const replyDelayMs = options.replyDelayMs ?? 0;
  const target = new URL(serverUrl);
  if (!target.port) throw new Error(`startTcpRelay needs an explicit port: ${serverUrl}`);
  const port = await freePort();
  const url = new URL(serverUrl);
  url.host = `127.0.0.1:${port}`;
  const open = new Set<Socket>();
  /** Sockets whose bytes are dropped: every socket open at the last freeze(), and those accepted since. */
  const frozen = new WeakSet<Socket>();
  let freezing = false;
  let server: Server | null = null;
  /** Stops relaying `socket`: what it receives is read and dropped; it is never ended or reset. */
  const freezeSocket = (socket: Socket) => {
    frozen.add(socket);
    socket.unpipe();
    socket.removeAllListeners('data');
    socket.on('data', () => undefined);
    socket.resume();
  };
  /** While a hold is on: what each connection asked since, the connections held, and what to send on release. */
  let holding: Hold | null = null;
  const noteRequest = (client: Socket, chunk: Buffer) => {
    if (!holding || holding.held.has(client)) return;
    if (holding.armed.has(client)) {
      holding.held.add(client);
      return;
    }
    const asked = (holding.asked.get(client) ?? '') + chunk.toString('latin1');
    holding.asked.set(client, asked);
    if (holding.texts.every((text) => asked.includes(text))) (holding.next ? holding.armed : holding.held).add(client);
  };
  /** Sends a reply to `client` now, or on release when its connection is held. */
  const reply = (client: Socket, send: () => void) => {
    if (!holding?.held.has(client)) return send();
    holding.sends.push(send);
    holding.onHeld();
  };

  const listen = async () => {
    if (server) return;
    const relay = createServer((client: Socket) => {
      open.add(client);
      client.once('close', () => open.delete(client));
      if (freezing) {
        // Accepted, never relayed: where an unreachable server would leave the connect itself
        // unanswered; to a client either is a connection attempt that never completes.
        client.on('error', () => undefined);
        freezeSocket(client);
        return;
      }
      const upstream = connect(Number(target.port), target.hostname);
      open.add(upstream);
      upstream.once('close', () => open.delete(upstream));
      client.pipe(upstream);
      client.on('data', (chunk: Buffer) => noteRequest(client, chunk));
      // Timers of one duration fire in the order they were set: the replies keep their order.
      const later = (send: () => void) => (replyDelayMs <= 0 ? send() : setTimeout(send, replyDelayMs));
      upstream.on('data', (chunk: Buffer) =>
        later(() => reply(client, () => client.destroyed || frozen.has(client) || client.write(chunk))),
      );
      upstream.once('end', () => later(() => reply(client, () => frozen.has(client) || client.end())));
      // Frozen, one side's end or error is not passed on: nothing is, in a blackhole.
      client.on('error', () => frozen.has(client) || upstream.destroy());
      upstream.on('error', () => frozen.has(upstream) || client.destroy());
    });
    await new Promise<void>((resolve) => relay.listen(port, '127.0.0.1', resolve));
    server = relay;
  };
  const cut = async () => {
    const closing = server;
    server = null;
    for (const socket of open) socket.destroy();
    if (closing) await new Promise<void>((resolve) => closing.close(() => resolve()));
  };

  const freeze = () => {
    freezing = true;
    for (const socket of open) freezeSocket(socket);
  };
  const thaw = () => {
    freezing = false;
  };

  const hold = (next: boolean, texts: string[]): HeldReplies => {
    if (holding) throw new Error('one hold at a time');
    let onHeld: () => void = () => undefined;
    const held = new Promise<void>((resolve) => (onHeld = resolve));
    const current: Hold = { texts, next, armed: new Set(), asked: new Map(), held: new Set(), sends: [], onHeld };
    holding = current;
    return {
      held: () => held,
      release: () => {
        if (holding !== current) return;
        holding = null;
        for (const send of current.sends) send();
      },
    };
  };
  const holdRepliesTo = (...texts: string[]) => hold(false, texts);
  const holdRepliesAfter = (...texts: string[]) => hold(true, texts);

  if (options.listening !== false) await listen();
  return { url: url.toString(), cut, restore: listen, close: cut, freeze, thaw, holdRepliesTo, holdRepliesAfter };
}
