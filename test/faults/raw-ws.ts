/**
 * A deliberately minimal WebSocket client over a plain TCP socket, so the fuzzer can send what
 * no well-behaved library would: malformed engine.io / Socket.IO packets, frames with reserved
 * bits or opcodes, unmasked frames, lying lengths and oversized payloads.
 */
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';

export interface RawWs {
  /** Text frames received (engine.io packets), in order. */
  received: string[];
  closed: Promise<void>;
  isClosed(): boolean;
  sendText(text: string): void;
  /** Any frame: first byte (FIN/RSV/opcode), payload, masked or not, optional length lie. */
  sendFrame(first: number, payload: Buffer, options?: { masked?: boolean; declaredLength?: number }): void;
  sendRaw(bytes: Buffer): void;
  close(): void;
}

export function encodeFrame(first: number, payload: Buffer, options: { masked?: boolean; declaredLength?: number } = {}): Buffer {
  const masked = options.masked ?? true;
  const length = options.declaredLength ?? payload.length;
  let header: Buffer;
  if (length < 126) {
    header = Buffer.from([first, (masked ? 0x80 : 0) | length]);
  } else if (length < 65_536) {
    header = Buffer.alloc(4);
    header[0] = first;
    header[1] = (masked ? 0x80 : 0) | 126;
    header.writeUInt16BE(length, 2);
  } else {
    header = Buffer.alloc(10);
    header[0] = first;
    header[1] = (masked ? 0x80 : 0) | 127;
    header.writeBigUInt64BE(BigInt(length), 2);
  }
  if (!masked) return Buffer.concat([header, payload]);
  const mask = randomBytes(4);
  const body = Buffer.alloc(payload.length);
  for (let i = 0; i < payload.length; i++) body[i] = payload[i]! ^ mask[i % 4]!;
  return Buffer.concat([header, mask, body]);
}

/** Opens `ws://host:port/socket.io/?EIO=4&transport=websocket`; resolves after the upgrade. */
export function openRawWs(port: number, path = '/socket.io/?EIO=4&transport=websocket', timeoutMs = 5000): Promise<RawWs> {
  return new Promise((resolve, reject) => {
    const socket: Socket = connect(port, '127.0.0.1');
    const received: string[] = [];
    let buffer = Buffer.alloc(0);
    let upgraded = false;
    let closed = false;
    const closedPromise = new Promise<void>((done) => socket.once('close', () => {
      closed = true;
      done();
    }));
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('raw ws: no upgrade'));
    }, timeoutMs);
    socket.on('error', () => undefined);
    socket.once('connect', () => {
      socket.write(
        `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
    });
    const parseFrames = () => {
      while (buffer.length >= 2) {
        const opcode = buffer[0]! & 0x0f;
        let length = buffer[1]! & 0x7f;
        let offset = 2;
        if (length === 126) {
          if (buffer.length < 4) return;
          length = buffer.readUInt16BE(2);
          offset = 4;
        } else if (length === 127) {
          if (buffer.length < 10) return;
          length = Number(buffer.readBigUInt64BE(2));
          offset = 10;
        }
        if (buffer.length < offset + length) return;
        const payload = buffer.subarray(offset, offset + length);
        buffer = buffer.subarray(offset + length);
        if (opcode === 1) received.push(payload.toString('utf8'));
      }
    };
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      if (!upgraded) {
        const end = buffer.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buffer.subarray(0, end).toString('latin1');
        buffer = buffer.subarray(end + 4);
        clearTimeout(timer);
        if (!head.startsWith('HTTP/1.1 101')) {
          socket.destroy();
          reject(new Error(`raw ws: ${head.split('\r\n')[0]}`));
          return;
        }
        upgraded = true;
        resolve({
          received,
          closed: closedPromise,
          isClosed: () => closed,
          sendText: (text) => {
            if (!closed) socket.write(encodeFrame(0x81, Buffer.from(text, 'utf8')));
          },
          sendFrame: (first, payload, options) => {
            if (!closed) socket.write(encodeFrame(first, payload, options));
          },
          sendRaw: (bytes) => {
            if (!closed) socket.write(bytes);
          },
          close: () => socket.destroy(),
        });
      }
      parseFrames();
    });
  });
}
