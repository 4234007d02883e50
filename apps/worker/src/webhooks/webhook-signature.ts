import { createHmac } from 'node:crypto';

/** The headers of a webhook POST (docs/webhooks.md). */
export const WEBHOOK_HEADERS = {
  timestamp: 'x-chat-webhook-timestamp',
  signature: 'x-chat-webhook-signature',
  endpoint: 'x-chat-webhook-endpoint',
} as const;

/**
 * `v1=` + hex HMAC-SHA256 keyed with the endpoint's secret over `${timestamp}.${rawBody}`:
 * the timestamp is signed with the body, so a receiver can refuse an old request replayed.
 */
export function signWebhook(secret: string, timestampSeconds: number, rawBody: string): string {
  return `v1=${createHmac('sha256', secret).update(`${timestampSeconds}.${rawBody}`).digest('hex')}`;
}
