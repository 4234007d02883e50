import pino, { type Logger } from 'pino';

/** Drops `token=` values from a URL before it can reach a log line. */
export function redactUrl(url: string | undefined): string | undefined {
  return url?.replace(/([?&](?:token|access_token)=)[^&#]*/gi, '$1[REDACTED]');
}

export function createLogger(options: { level: string; pod: string }): Logger {
  return pino({
    level: options.level,
    base: { pod: options.pod },
    redact: {
      paths: [
        'req.headers.authorization',
        'req.headers.cookie',
        'headers.authorization',
        'handshake.auth',
        'handshake.headers.authorization',
        'auth.token',
        'token',
        'accessToken',
      ],
      censor: '[REDACTED]',
    },
    serializers: {
      req: (request: { id?: string; method?: string; url?: string }) => ({
        id: request.id,
        method: request.method,
        url: redactUrl(request.url),
      }),
    },
  });
}
