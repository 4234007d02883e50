import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  CLIENT_EVENTS,
  CLIENT_EVENT_CONTRACTS,
  CLIENT_EVENT_DOCS,
  SERVER_EVENTS,
  SERVER_EVENT_DOCS,
  SERVER_PAYLOADS,
  renderEventReference,
} from '../src/index.ts';

describe('event reference', () => {
  it('documents exactly the events the code defines', () => {
    expect(Object.keys(CLIENT_EVENT_DOCS).sort()).toEqual(Object.values(CLIENT_EVENTS).sort());
    expect(Object.keys(SERVER_EVENT_DOCS).sort()).toEqual(Object.values(SERVER_EVENTS).sort());
    expect(Object.keys(CLIENT_EVENT_CONTRACTS).sort()).toEqual(Object.values(CLIENT_EVENTS).sort());
    expect(Object.keys(SERVER_PAYLOADS).sort()).toEqual(Object.values(SERVER_EVENTS).sort());
  });

  it('docs/events.md is the rendering of the current code (run `pnpm docs:events`)', () => {
    const committed = readFileSync(new URL('../../../docs/events.md', import.meta.url), 'utf8');
    expect(committed).toBe(renderEventReference());
  });
});
