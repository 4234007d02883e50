import WebSocket from 'ws';

/**
 * A minimal Engine.IO v4 / Socket.IO v5 client over `ws`: websocket transport only, one
 * namespace, text frames only. It costs a fraction of socket.io-client's CPU, so the load
 * generator leaves more of the box to the servers it measures. Frames reach `onFrame` raw:
 * the caller decides what to parse.
 */
export interface SpeakerOptions {
  /** http(s)://host:port of a Socket.IO server on the default path. */
  url: string;
  namespace: string;
  /** Sent in the CONNECT packet as `socket.handshake.auth`. */
  auth?: Record<string, string> | null;
  /** Every Socket.IO packet other than CONNECT/ACK, e.g. `42/socket,["new-message",{…}]`. */
  onFrame?: (frame: string) => void;
  onClose?: (reason: string) => void;
  timeoutMs?: number;
}

export class ConnectRefused extends Error {
  constructor(readonly reply: string) {
    super(`connect refused: ${reply.slice(0, 200)}`);
  }
}

export function socketUrl(base: string): string {
  const url = new URL(base);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  url.pathname = '/socket.io/';
  url.search = '?EIO=4&transport=websocket';
  return url.toString();
}

export class Speaker {
  private readonly acks = new Map<number, (frame: string) => void>();
  private nextAck = 1;
  private readonly eventPrefix: string;
  private readonly ackPrefix: string;
  closed = false;

  private constructor(
    private readonly ws: WebSocket,
    readonly namespace: string,
  ) {
    this.eventPrefix = namespace === '/' ? '42' : `42${namespace},`;
    this.ackPrefix = namespace === '/' ? '43' : `43${namespace},`;
  }

  static connect(options: SpeakerOptions): Promise<Speaker> {
    const { namespace } = options;
    const nspPart = namespace === '/' ? '' : `${namespace},`;
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(socketUrl(options.url), {
        perMessageDeflate: false,
        skipUTF8Validation: true,
        handshakeTimeout: options.timeoutMs ?? 10_000,
      });
      const speaker = new Speaker(ws, namespace);
      /** Settled: resolved or rejected, once. */
      let connected = false;
      /** The namespace accepted us: only such a socket's close is a disconnect. */
      let established = false;
      const timer = setTimeout(() => fail(new Error('connect timeout')), options.timeoutMs ?? 10_000);
      const fail = (error: Error) => {
        clearTimeout(timer);
        if (!connected) {
          connected = true; // settle once
          ws.terminate();
          reject(error);
        }
      };
      ws.on('error', (error) => fail(error));
      ws.on('close', (code) => {
        speaker.closed = true;
        fail(new Error(`closed during connect (${code})`));
        // A failed attempt is reported by the rejection alone: telling onClose as well made the
        // caller start a second retry chain per failure, and every chain ended in a live socket.
        if (established) options.onClose?.(`close ${code}`);
      });
      ws.on('message', (data: WebSocket.RawData, isBinary: boolean) => {
        if (isBinary) return;
        const frame = data.toString();
        const type = frame.charCodeAt(0);
        if (type === 50 /* '2' ping */) {
          ws.send('3');
          return;
        }
        if (type === 48 /* '0' open */) {
          ws.send(`40${nspPart}${options.auth ? JSON.stringify(options.auth) : ''}`);
          return;
        }
        if (type !== 52 /* '4' message */) return;
        const packet = frame.charCodeAt(1);
        if (packet === 48 /* CONNECT */ && !connected) {
          connected = established = true;
          clearTimeout(timer);
          resolve(speaker);
          return;
        }
        if (packet === 52 /* CONNECT_ERROR */ && !connected) {
          fail(new ConnectRefused(frame.slice(2 + nspPart.length)));
          return;
        }
        if (packet === 51 /* ACK */ && frame.startsWith(speaker.ackPrefix)) {
          const start = speaker.ackPrefix.length;
          const bracket = frame.indexOf('[', start);
          const id = Number(frame.slice(start, bracket));
          const callback = speaker.acks.get(id);
          if (callback) {
            speaker.acks.delete(id);
            callback(frame.slice(bracket));
          }
          return;
        }
        options.onFrame?.(frame);
      });
    });
  }

  /** Emits `event` with `payload`; `onAck` receives the raw JSON array of the ack's arguments. */
  emit(event: string, payload: unknown, onAck?: (args: string) => void): void {
    if (this.closed) return;
    let frame: string;
    if (onAck) {
      const id = this.nextAck++;
      this.acks.set(id, onAck);
      frame = `${this.eventPrefix}${id}${JSON.stringify([event, payload])}`;
    } else {
      frame = `${this.eventPrefix}${JSON.stringify([event, payload])}`;
    }
    this.ws.send(frame);
  }

  get pendingAcks(): number {
    return this.acks.size;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.ws.close();
  }
}
