import { writeFileSync } from 'node:fs';
import { renderEventReference } from '../src/event-reference.ts';

const target = new URL('../../../docs/events.md', import.meta.url);
writeFileSync(target, renderEventReference());
console.log(`wrote ${target.pathname}`);
