import pino, { type DestinationStream, type Logger, type LoggerOptions } from 'pino';

/**
 * Query parameter names whose values are credentials, compared after percent-decoding and
 * lower-casing: a client may write `tok%65n=` and the server still reads it as `token`, so
 * the name as written proves nothing. A name is secret when it contains one of `SECRET_PARTS`
 * (`token`, `access_token`, `x-auth-token`…) or is one of `SECRET_NAMES`.
 */
const SECRET_PARTS = ['token', 'secret', 'password', 'passwd', 'authorization', 'jwt', 'apikey', 'api_key', 'api-key'];
const SECRET_NAMES = new Set(['auth', 'key', 'sig', 'signature', 'code']);

/** A compact JWS (`eyJ…`) under any name, `Bearer ` prefixed or not, is hidden too. */
const JWT_VALUE = /^(?:bearer(?:\+|%20)+)?eyj[\w-]*(?:\.|%2e)[\w-]*(?:\.|%2e)/i;

function isSecretName(rawName: string): boolean {
  let name: string;
  try {
    name = decodeURIComponent(rawName.replace(/\+/g, ' ')).toLowerCase();
  } catch {
    return true; // undecodable: no telling what a lenient parser makes of it, so hide its value
  }
  return SECRET_PARTS.some((part) => name.includes(part)) || SECRET_NAMES.has(name.trim());
}

/** Replaces the values of credential-like query parameters of a URL before it can reach a log line. */
export function redactUrl(url: string | undefined): string | undefined {
  if (url === undefined) return undefined;
  const queryStart = url.indexOf('?');
  if (queryStart === -1) return url;
  const hashStart = url.indexOf('#', queryStart);
  const queryEnd = hashStart === -1 ? url.length : hashStart;
  const query = url
    .slice(queryStart + 1, queryEnd)
    .split('&')
    .map((pair) => {
      const equals = pair.indexOf('=');
      if (equals === -1) return pair;
      const name = pair.slice(0, equals);
      return isSecretName(name) || JWT_VALUE.test(pair.slice(equals + 1)) ? `${name}=[REDACTED]` : pair;
    })
    .join('&');
  return `${url.slice(0, queryStart + 1)}${query}${url.slice(queryEnd)}`;
}

/** `destination`: where the lines go (default stdout); tests keep them in memory. */
export function createLogger(options: { level: string; pod: string; destination?: DestinationStream }): Logger {
  const settings: LoggerOptions = {
    level: options.level,
    base: { pod: options.pod },
    redact: {
      paths: [
        'req.headers.authorization',
        'req.headers.cookie',
        'headers.authorization',
        // The server API's key (PROTOCOL §17): calls are logged with the key's id only.
        'req.headers["x-api-key"]',
        'headers["x-api-key"]',
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
  };
  return options.destination ? pino(settings, options.destination) : pino(settings);
}
