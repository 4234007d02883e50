import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ENV_VARIABLES, envDefaults, loadConfig } from '@chat/gateway';
import { SERVER_BATCH_MAX_BODY_BYTES } from '@chat/protocol';
import { WORKER_ENV_VARIABLES, workerEnvDefaults } from '@chat/worker';

/**
 * The variables the apps read (their env schemas) against what README.md and the other docs say
 * of them: every variable documented, none documented that nothing reads, and every default the
 * docs name the one the code applies. A default changed on one side only used to go unnoticed
 * until an operator relied on the docs.
 */
const root = fileURLToPath(new URL('../..', import.meta.url));
const read = (file: string) => readFileSync(path.join(root, file), 'utf8');
const readme = read('README.md');

const section = (text: string, heading: string): string => {
  const match = new RegExp(`^## ${heading}\\n([\\s\\S]*?)(?=^## |$(?![\\s\\S]))`, 'm').exec(text);
  expect(match, heading).not.toBeNull();
  return match![1]!;
};
const configuration = section(readme, 'Configuration');
const faultSuite = section(readme, 'Fault suite');
const [gatewayPart, workerPart] = configuration.split(/^Worker \(/m) as [string, string];

const gatewayDefaults = envDefaults();
const workerDefaults = workerEnvDefaults();
const gatewayBase = { JWT_SECRET: 'a-secret-of-at-least-thirty-two-bytes-long' };

/** Defaults the schemas leave unset and the apps derive (loadConfig), as the docs must write them. */
const derived: Record<'gateway' | 'worker', Record<string, string>> = {
  gateway: {
    POD_NAME: 'gateway-<pid>',
    DATABASE_STALL_TIMEOUT_MS: String(loadConfig(gatewayBase).databaseStallTimeoutMs),
  },
  worker: { POD_NAME: 'worker-<pid>' },
};

/** Variables for the fault suite only: documented in README "Fault suite", not in the table. */
const faultOnly = (name: string) => name.startsWith('FAULT_');

/** A default as the docs write it: `3000`, `a,b`, or "empty" for an empty list or string. */
function written(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (Array.isArray(value)) return value.length === 0 ? 'empty' : value.join(',');
  if (value === '') return 'empty';
  return String(value);
}

/** The gateway table's rows: the variables of the first cell, the default cell. */
function tableRows(): { names: string[]; defaults: string }[] {
  return gatewayPart
    .split('\n')
    .filter((line) => line.startsWith('| `'))
    .map((line) => {
      const cells = line.split(' | ');
      return { names: [...cells[0]!.matchAll(/`([A-Z][A-Z0-9_]+)`/g)].map((m) => m[1]!), defaults: cells[1]! };
    });
}

describe('README "Configuration": the gateway table', () => {
  const rows = tableRows();

  it('has a row for every variable the gateway reads, once, and none for a variable it does not read', () => {
    const documented = rows.flatMap((row) => row.names);
    expect(documented.filter((name) => !ENV_VARIABLES.includes(name))).toEqual([]);
    expect(new Set(documented).size).toBe(documented.length);
    expect(ENV_VARIABLES.filter((name) => !faultOnly(name) && !documented.includes(name))).toEqual([]);
  });

  it("gives each variable the gateway's own default (— where it has none)", () => {
    for (const row of rows) {
      // `PORT`, `HOST` | `3000`, `0.0.0.0`: one default each, in order; otherwise one for all.
      const parts = row.defaults.split(', ');
      row.names.forEach((name, index) => {
        const cell = (parts.length === row.names.length ? parts[index] : row.defaults)!;
        const expected = derived.gateway[name] ?? written(gatewayDefaults[name]);
        if (expected === undefined) expect(cell, name).toMatch(/^—/);
        else if (expected === 'empty') expect(cell, name).toMatch(/^empty\b/);
        else expect(cell, name).toContain(`\`${expected}\``);
      });
    }
  });

  it('documents the fault-injection variables, and their defaults, in "Fault suite"', () => {
    for (const name of ENV_VARIABLES.filter(faultOnly)) {
      expect(faultSuite, name).toContain(`\`${name}\``);
      const value = written(gatewayDefaults[name]);
      if (value !== undefined) expect(faultSuite, name).toMatch(new RegExp(`\`${name}\`, ${value} by default`));
    }
  });
});

describe('README "Configuration": the worker paragraph', () => {
  it("names every variable the worker reads, with the worker's default", () => {
    for (const name of WORKER_ENV_VARIABLES) {
      const match = new RegExp(`\`${name}\`(?:\\s\\(([^)]*)\\))?`).exec(workerPart);
      expect(match, name).not.toBeNull();
      const expected = derived.worker[name] ?? written(workerDefaults[name]);
      const stated = match![1]?.replaceAll('`', '');
      if (expected === undefined) continue; // none: whatever follows in brackets is not a default
      if (stated === undefined) {
        // Named without a default: the gateway table's row is the reference, so it must hold.
        expect(ENV_VARIABLES, name).toContain(name);
        expect(derived.gateway[name] ?? written(gatewayDefaults[name]), name).toBe(expected);
      } else if (expected === 'empty') {
        expect(stated, name).toMatch(/\bempty\b/);
      } else {
        expect(stated, name).toMatch(new RegExp(`^${expected.replace(/[.*+?^${}()|[\]\\<>]/g, '\\$&')}(?![\\d.])`));
      }
    }
  });

  it('names no variable the worker does not read', () => {
    const named = [...workerPart.matchAll(/`([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)`/g)].map((m) => m[1]!);
    expect(named.filter((name) => !WORKER_ENV_VARIABLES.includes(name))).toEqual([]);
  });
});

describe('defaults quoted elsewhere in the docs', () => {
  // `NAME` (15 s), `NAME` (32 by default), `NAME` (1 MiB): a quantity first in the brackets.
  const files = [
    'README.md',
    'k8s/README.md',
    ...readdirSync(path.join(root, 'docs')).filter((file) => file.endsWith('.md')).map((file) => `docs/${file}`),
    'packages/protocol/src/event-reference.ts',
  ];
  const seconds: Record<string, number> = { s: 1, min: 60, h: 3600, day: 86_400, days: 86_400 };
  const bytes: Record<string, number> = { KiB: 1024, MiB: 1024 * 1024 };

  /** The quantity in base units of the variable's name (ms for _MS, seconds for _SECONDS, bytes). */
  function quantity(name: string, amount: number, unit: string): number {
    if (unit === '' || unit === 'ms') return amount;
    if (unit in bytes) return amount * bytes[unit]!;
    return amount * seconds[unit]! * (name.endsWith('_SECONDS') ? 1 : 1000);
  }

  it("match a default of the app that reads the variable (the gateway's or the worker's)", () => {
    const mentions: string[] = [];
    for (const file of files) {
      for (const match of read(file).matchAll(/`([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)` \(`?(\d[\d,]*(?:\.\d+)?)`? ?(ms|s|min|h|days?|KiB|MiB|)(?=[ ),:;])/g)) {
        const [, name, amount, unit] = match as unknown as [string, string, string, string];
        if (!ENV_VARIABLES.includes(name) && !WORKER_ENV_VARIABLES.includes(name)) continue;
        const stated = quantity(name, Number(amount.replaceAll(',', '')), unit);
        const defaults = [
          gatewayDefaults[name],
          workerDefaults[name],
          derived.gateway[name] === undefined ? undefined : Number(derived.gateway[name]),
        ].filter((value) => typeof value === 'number');
        mentions.push(`${file}: ${name}`);
        expect(defaults, `${file}: \`${name}\` (${amount}${unit ? ` ${unit}` : ''})`).toContain(stated);
      }
    }
    // The scan finds the docs' mentions (a changed pattern would otherwise pass on nothing).
    expect(mentions.length).toBeGreaterThan(15);
  });
});

describe("the server API batch's body limit as the docs quote it", () => {
  it('is SERVER_BATCH_MAX_BODY_BYTES, in PROTOCOL §17, §13 and the OpenAPI description', () => {
    // "1.6 MiB" was quoted for 1,638,400 bytes (1.5625 MiB): a client sizing to it got 413.
    const quoted = `${(SERVER_BATCH_MAX_BODY_BYTES / 1024).toLocaleString('en-US')} KiB`;
    const protocol = read('docs/PROTOCOL.md');
    expect(protocol.split(quoted).length - 1).toBeGreaterThanOrEqual(2);
    expect(protocol).not.toMatch(/\d MiB for\s+`POST \/api\/server\/messages\/batch`|batch`.{0,200}\d(\.\d)? MiB/);
    expect(read('apps/gateway/src/http/server-api.routes.ts')).toContain(`The body may be up to ${quoted}`);
  });
});
