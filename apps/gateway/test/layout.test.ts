import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { CLIENT_EVENTS } from '@chat/protocol';

/**
 * The gateway's folders say what they hold, so a reader finds where a change goes from the
 * names alone. These checks keep them saying it.
 */
const src = fileURLToPath(new URL('../src/', import.meta.url));
const filesUnder = (folder: string) =>
  readdirSync(path.join(src, folder), { recursive: true, encoding: 'utf8' }).filter((file) => file.endsWith('.ts'));

describe('the gateway layout', () => {
  it('keeps the transports (http/, realtime/) off the database package: they call services', () => {
    for (const folder of ['http', 'realtime']) {
      for (const file of filesUnder(folder)) {
        const source = readFileSync(path.join(src, folder, file), 'utf8');
        expect(source, `${folder}/${file}`).not.toMatch(/from '@chat\/db'/);
      }
    }
  });

  it('holds only services (and the RoomEvents port) in services/', () => {
    for (const file of filesUnder('services')) {
      expect(file.endsWith('.service.ts') || file === 'room-events.ts', file).toBe(true);
    }
  });

  it('has one handler file per client event in realtime/handlers/', () => {
    const handlers = new Set(filesUnder('realtime/handlers'));
    for (const event of Object.values(CLIENT_EVENTS)) {
      expect(handlers.has(`${event}.handler.ts`), event).toBe(true);
    }
  });
});
