import { describe, expect, it } from 'vitest';
import { ApiError, NETWORK_ERROR_MESSAGE } from '../client/api.ts';
import { OutageNotice } from '../client/outage.ts';

const unreachable = () => new ApiError(NETWORK_ERROR_MESSAGE, 0, 'NETWORK');

describe("the room list's outage notice", () => {
  it('says once per outage that the server cannot be reached, not at every refresh', () => {
    const notice = new OutageNotice();
    expect(notice.failed(unreachable())).toBe(true);
    expect(notice.failed(unreachable())).toBe(false);
    expect(notice.failed(new ApiError('Bad Gateway', 502, 'HTTP'))).toBe(false);
    // A refresh got through: the next outage is said again.
    notice.succeeded();
    expect(notice.failed(unreachable())).toBe(true);
  });

  it('reports every other failure', () => {
    const notice = new OutageNotice();
    expect(notice.failed(unreachable())).toBe(true);
    const refused = new ApiError('요청이 너무 많습니다. 잠시 후 다시 시도해주세요', 429, 'TOO_MANY_REQUESTS');
    expect(notice.failed(refused)).toBe(true);
    expect(notice.failed(refused)).toBe(true);
  });
});
