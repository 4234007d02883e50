/**
 * Scenario 8's webhook receiver: a real node:http server in the runner process on a loopback
 * port, verifying every POST with the verifier printed in docs/webhooks.md (the example file
 * itself), recording each delivery as received. It can be taken down (listener closed, open
 * connections dropped: the worker's POSTs are refused) and brought back on the same port.
 */
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { RoomChange } from '@chat/protocol';

type Verify = (input: { secret: string; timestamp: unknown; signature: unknown; rawBody: string }) => boolean;
// The documented example, not a copy of it: what a new user pastes is what is exercised here.
const example = (await import(new URL('../../docs/examples/webhook-receiver.mjs', import.meta.url).href)) as { verifyWebhook: Verify };

export interface WebhookDelivery {
  verified: boolean;
  events: RoomChange[];
}

export class WebhookReceiver {
  readonly deliveries: WebhookDelivery[] = [];
  private server: Server | null = null;
  /** False while going down: POSTs are recorded (stored) but never answered. */
  private answering = true;
  /** POSTs recorded but not answered: the worker must send their events again. */
  unanswered = 0;
  port = 0;

  constructor(readonly secret: string) {}

  get up(): boolean {
    return this.server !== null;
  }

  /** Listens on `port` (0: a free one the first time; later, the same one again). */
  async start(): Promise<void> {
    if (this.server) return;
    const server = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        const rawBody = Buffer.concat(chunks).toString('utf8');
        const verified = example.verifyWebhook({
          secret: this.secret,
          timestamp: request.headers['x-chat-webhook-timestamp'],
          signature: request.headers['x-chat-webhook-signature'],
          rawBody,
        });
        let events: RoomChange[] = [];
        try {
          if (verified) events = (JSON.parse(rawBody) as { events: RoomChange[] }).events;
        } catch {
          // recorded as a delivery without events; the checker counts what arrived
        }
        this.deliveries.push({ verified, events });
        if (!this.answering) {
          this.unanswered += 1;
          return;
        }
        response.writeHead(verified ? 200 : 401).end();
      });
    });
    this.answering = true;
    server.listen(this.port, '127.0.0.1');
    await once(server, 'listening');
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  /**
   * Down: no listener, and open connections cut, so every POST is refused. With `crashMs`, it
   * first stores POSTs without answering for up to that long (until one such POST came): a
   * receiver that crashed after storing events, before its 2xx, which the worker redelivers.
   */
  async stop(crashMs = 0): Promise<void> {
    const server = this.server;
    if (!server) return;
    if (crashMs > 0) {
      this.answering = false;
      const before = this.unanswered;
      const deadline = Date.now() + crashMs;
      while (this.unanswered === before && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    this.server = null;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections();
    await closed;
  }
}
