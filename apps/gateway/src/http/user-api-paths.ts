import type { FastifyRequest } from 'fastify';

/**
 * Whether a request is for the users' API (`/api/*` but not the server API, `/api/server/*`):
 * what the HTTP rate limit counts and what browsers of CORS_ORIGINS may call. Decided on the
 * route that answers, not on the URL as spelled: the router decodes the path, so `/%61pi/rooms`
 * reaches `/api/rooms` while its raw URL does not start with `/api/`.
 */
export function isUserApiRequest(request: FastifyRequest): boolean {
  const route = request.routeOptions.url;
  const path = route?.startsWith('/api/') ? route : decodedPath(request.url);
  return path.startsWith('/api/') && !path.startsWith('/api/server/');
}

/** The URL's path with its percent-escapes decoded (as it is, when they are malformed). */
function decodedPath(url: string): string {
  const path = url.split('?', 1)[0]!;
  try {
    return decodeURIComponent(path);
  } catch {
    return path;
  }
}
