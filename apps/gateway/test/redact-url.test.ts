import { describe, expect, it } from 'vitest';
import { redactUrl } from '../src/infrastructure/logger.ts';

const JWT = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl';

describe('redactUrl', () => {
  it('hides the value of token parameters however their name is percent-encoded', () => {
    for (const name of ['token', 'TOKEN', 'tok%65n', '%74oken', '%74%6F%6B%65%6E', 'access_token', 'access%5Ftoken', 'accessToken', 'authorization', 'Authorizatio%6E', 'x-auth-token', 'id_token', 'auth', 'jwt', 'api_key', 'client_secret', 'password']) {
      const redacted = redactUrl(`/socket.io/?EIO=4&transport=websocket&${name}=secret-value&x=1`);
      expect(redacted, name).toBe(`/socket.io/?EIO=4&transport=websocket&${name}=[REDACTED]&x=1`);
    }
  });

  it('hides a JWT under any name, with or without a Bearer prefix', () => {
    expect(redactUrl(`/api/rooms?t=${JWT}`)).toBe('/api/rooms?t=[REDACTED]');
    expect(redactUrl(`/api/rooms?x=Bearer%20${JWT}`)).toBe('/api/rooms?x=[REDACTED]');
    expect(redactUrl(`/api/rooms?x=${JWT.replaceAll('.', '%2E')}`)).toBe('/api/rooms?x=[REDACTED]');
  });

  it('hides the value of a name it cannot decode, keeps everything else as it was', () => {
    expect(redactUrl('/api/rooms?tok%ZZen=abc&limit=10')).toBe('/api/rooms?tok%ZZen=[REDACTED]&limit=10');
    expect(redactUrl('/api/rooms/1/messages?limit=10&before=abc&flag')).toBe('/api/rooms/1/messages?limit=10&before=abc&flag');
    expect(redactUrl('/api/rooms')).toBe('/api/rooms');
    expect(redactUrl('/x?token=a#frag')).toBe('/x?token=[REDACTED]#frag');
    expect(redactUrl('/x?token=a&token=b')).toBe('/x?token=[REDACTED]&token=[REDACTED]');
    expect(redactUrl(undefined)).toBeUndefined();
  });
});
