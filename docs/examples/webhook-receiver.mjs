// A webhook receiver for the chat cluster (docs/webhooks.md): verifies each POST's signature,
// drops duplicates and notices gaps. Node 18+, no dependencies. Run it:
//
//   WEBHOOK_SECRET=… PORT=8080 node docs/examples/webhook-receiver.mjs
//
// and configure the worker with
//   WEBHOOK_ENDPOINTS='[{"id":"my-app","url":"http://127.0.0.1:8080/chat-events","secret":"…"}]'
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer } from 'node:http';
import { pathToFileURL } from 'node:url';

/**
 * True when `signature` (the X-Chat-Webhook-Signature header) is the HMAC-SHA256, keyed with
 * the endpoint's secret, of `${timestamp}.${rawBody}` (timestamp: X-Chat-Webhook-Timestamp,
 * rawBody: the request body exactly as received, before any JSON parsing), and the timestamp
 * is within `toleranceSeconds` of now (a replayed old request is refused).
 */
export function verifyWebhook({ secret, timestamp, signature, rawBody, toleranceSeconds = 300, nowMs = Date.now() }) {
  if (typeof timestamp !== 'string' || typeof signature !== 'string' || !/^\d{1,12}$/.test(timestamp)) return false;
  if (Math.abs(nowMs / 1000 - Number(timestamp)) > toleranceSeconds) return false;
  const expected = Buffer.from(`v1=${createHmac('sha256', secret).update(`${timestamp}.${rawBody}`).digest('hex')}`);
  const given = Buffer.from(signature);
  return expected.length === given.length && timingSafeEqual(expected, given);
}

/**
 * A request handler: 401 for a bad signature, 200 once the events are handled. Events arrive
 * at least once and in order per room; `(roomId, changeSeq)` identifies one. A changeSeq
 * below or at the last one seen is a duplicate; one more than one past it means a gap (events
 * filtered out by `kinds` leave gaps too): refill it from the server API with your API key,
 * GET /api/server/rooms/:roomId/changes?after=<last seen> and `X-Api-Key: <key>`, following
 * `hasMore` (the public /api/rooms/… route names nobody in joins and leaves to a non-member).
 */
export function createWebhookHandler({ secret, onEvent }) {
  const lastSeen = new Map(); // roomId -> highest changeSeq handled; keep it in your database
  return (request, response) => {
    const chunks = [];
    request.on('data', (chunk) => chunks.push(chunk));
    request.on('end', async () => {
      const rawBody = Buffer.concat(chunks).toString('utf8');
      const ok = verifyWebhook({
        secret,
        timestamp: request.headers['x-chat-webhook-timestamp'],
        signature: request.headers['x-chat-webhook-signature'],
        rawBody,
      });
      if (!ok) {
        response.writeHead(401).end();
        return;
      }
      try {
        for (const event of JSON.parse(rawBody).events) {
          const last = lastSeen.get(event.roomId) ?? 0;
          if (event.changeSeq <= last) continue; // a duplicate: already handled
          await onEvent(event, { gapAfter: event.changeSeq > last + 1 ? last : null });
          lastSeen.set(event.roomId, event.changeSeq);
        }
        response.writeHead(200).end();
      } catch (error) {
        console.error(error);
        response.writeHead(500).end(); // not acknowledged: the worker sends it again
      }
    });
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const secret = process.env.WEBHOOK_SECRET;
  if (!secret) throw new Error('set WEBHOOK_SECRET');
  const handler = createWebhookHandler({
    secret,
    onEvent: (event, { gapAfter }) => {
      if (gapAfter !== null) console.log(`gap in ${event.roomId} after ${gapAfter}: refill from GET /api/server/rooms/${event.roomId}/changes?after=${gapAfter}`);
      console.log(event.roomId, event.changeSeq, event.event, JSON.stringify(event.payload));
    },
  });
  const port = Number(process.env.PORT ?? 8080);
  createServer(handler).listen(port, '127.0.0.1', () => console.log(`webhook receiver on http://127.0.0.1:${port}`));
}
