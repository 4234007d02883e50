import type { TestUser } from './clients.ts';

export interface HttpResult<T = any> {
  status: number;
  body: T;
}

/** A JSON request against a pod, through the real HTTP stack. */
export async function request<T = any>(
  baseUrl: string,
  method: string,
  path: string,
  options: { token?: string; body?: unknown; headers?: Record<string, string> } = {},
): Promise<HttpResult<T>> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(`${baseUrl}${path}`, {
    method,
    headers,
    ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

/** Factory: a room created over REST by `owner` (PROTOCOL §9). */
export async function createRoom(
  baseUrl: string,
  owner: TestUser,
  overrides: { name?: string; ttlSeconds?: number } = {},
): Promise<{ roomId: string; name: string; expiresAt: string }> {
  const result = await request(baseUrl, 'POST', '/api/rooms', {
    token: owner.token,
    body: { name: overrides.name ?? '테스트 방', ...(overrides.ttlSeconds ? { ttlSeconds: overrides.ttlSeconds } : {}) },
  });
  if (result.status !== 201) throw new Error(`createRoom: ${result.status} ${JSON.stringify(result.body)}`);
  return result.body;
}
