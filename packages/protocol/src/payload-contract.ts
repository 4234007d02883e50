import { AppError, type ErrorCode } from './errors.ts';
import { field, isRecord, type UntrustedRecord } from './fields.ts';

/**
 * The vocabulary in which a client event's payload is declared once (client-payloads.ts). A
 * declaration is an ordered list of checks; from it come the TypeScript type a client sends
 * (`PayloadOf`), the server's parsing (`parsePhase`: the checks run in the declared order, so
 * the declaration decides which error a bad payload gets) and the rows of docs/events.md
 * (`describePayload`, `errorsOf`). Hand-written rather than a schema library because the
 * order of the checks, across payload fields and server lookups, is itself the contract.
 */

/** One field's rule. `read` gets the own property's value (undefined when absent). */
export interface FieldRule<Wire = unknown, Value = unknown> {
  /** The wire type as the docs show it. */
  readonly shape: string;
  /** The errors `read` can throw, in the order it checks them. */
  readonly errors: readonly ErrorCode[];
  readonly optional: boolean;
  /** The value the server keeps; throws the AppError of the first failing check. */
  read(value: unknown): Value;
  /** Type-level only: what a well-behaved client sends. */
  readonly wire?: Wire;
}

export type Fields = Readonly<Record<string, FieldRule>>;

/** A field the payload must carry. */
export const required = <Wire, Value>(
  shape: string,
  errors: readonly ErrorCode[],
  read: (value: unknown) => Value,
): FieldRule<Wire, Value> & { readonly optional: false } => ({ shape, errors, optional: false, read });

/** A field the payload may leave out (`read` still gets undefined and decides the value). */
export const optional = <Wire, Value>(
  shape: string,
  errors: readonly ErrorCode[],
  read: (value: unknown) => Value,
): FieldRule<Wire, Value> & { readonly optional: true } => ({ shape, errors, optional: true, read });

/** A payload field, checked where it stands in the list. */
export interface FieldCheck<Name extends string = string, Rule extends FieldRule = FieldRule> {
  readonly kind: 'field';
  readonly name: Name;
  readonly rule: Rule;
}

/** A discriminated union: the tag picks which fields are read next, in their declared order. */
export interface OneOfCheck<Tag extends string = string, Variants extends Readonly<Record<string, Fields>> = Readonly<Record<string, Fields>>> {
  readonly kind: 'one-of';
  readonly tag: Tag;
  readonly tagError: ErrorCode;
  readonly variants: Variants;
}

/** A check the server makes with its own state (room, membership, rate limit) between payload checks. */
export interface ServerCheck {
  readonly kind: 'server';
  readonly name: string;
  readonly errors: readonly ErrorCode[];
}

export type Check = FieldCheck | OneOfCheck | ServerCheck;

export const fieldCheck = <const Name extends string, Rule extends FieldRule>(name: Name, rule: Rule): FieldCheck<Name, Rule> => ({
  kind: 'field',
  name,
  rule,
});

export const oneOf = <const Tag extends string, const Variants extends Readonly<Record<string, Fields>>>(
  tag: Tag,
  tagError: ErrorCode,
  variants: Variants,
): OneOfCheck<Tag, Variants> => ({ kind: 'one-of', tag, tagError, variants });

export const serverCheck = (name: string, ...errors: ErrorCode[]): ServerCheck => ({ kind: 'server', name, errors });

// ---- Types derived from a declaration --------------------------------------------------

type WireOf<Rule> = Rule extends FieldRule<infer Wire, unknown> ? Wire : never;

type FieldsWire<F extends Fields> = {
  -readonly [K in keyof F as F[K]['optional'] extends true ? never : K]: WireOf<F[K]>;
} & {
  -readonly [K in keyof F as F[K]['optional'] extends true ? K : never]?: WireOf<F[K]>;
};

type CheckWire<C> =
  C extends FieldCheck<infer Name, infer Rule>
    ? FieldsWire<{ [K in Name]: Rule }>
    : C extends OneOfCheck<infer Tag, infer Variants>
      ? { [V in keyof Variants & string]: { [K in Tag]: V } & FieldsWire<Variants[V]> }[keyof Variants & string]
      : unknown;
type Flatten<T> = T extends unknown ? { [K in keyof T]: T[K] } : never;
type Intersect<Checks extends readonly unknown[]> = Checks extends readonly [infer Head, ...infer Rest]
  ? CheckWire<Head> & Intersect<Rest>
  : unknown;

/** The payload a client sends, as declared. */
export type PayloadOf<Checks extends readonly Check[]> = Flatten<Intersect<Checks>>;

// ---- Parsing ------------------------------------------------------------------------------

function readFields(fields: Fields, record: UntrustedRecord, into: Record<string, unknown>): void {
  for (const name of Object.keys(fields)) into[name] = fields[name]!.read(field(record, name));
}

/**
 * Runs the payload checks of one phase: phase 0 is every check before the first server check,
 * phase 1 those between the first and the second, and so on. The server makes its own checks
 * between phases, so the order of all of them is the declaration's. Only declared fields are
 * read, own properties only, into a new object (nothing of the payload is spread).
 */
export function parsePhase(checks: readonly Check[], phase: number, payload: unknown): Record<string, unknown> {
  const record: UntrustedRecord = isRecord(payload) ? payload : {};
  const parsed: Record<string, unknown> = {};
  let current = 0;
  for (const check of checks) {
    if (check.kind === 'server') {
      if (++current > phase) break;
      continue;
    }
    if (current !== phase) continue;
    if (check.kind === 'field') {
      parsed[check.name] = check.rule.read(field(record, check.name));
      continue;
    }
    const tag = field(record, check.tag);
    if (typeof tag !== 'string' || !Object.hasOwn(check.variants, tag)) throw new AppError(check.tagError);
    parsed[check.tag] = tag;
    readFields(check.variants[tag]!, record, parsed);
  }
  return parsed;
}

// ---- Documentation ---------------------------------------------------------------------

function describeFields(fields: Fields): string[] {
  return Object.entries(fields).map(([name, rule]) => `${name}${rule.optional ? '?' : ''}: ${rule.shape}`);
}

/** `{ roomId: uuid, … }`; a union is written out variant by variant. */
export function describePayload(checks: readonly Check[]): string {
  const before: string[] = [];
  const after: string[] = [];
  let variants: string[][] = [[]];
  let pastUnion = false;
  for (const check of checks) {
    if (check.kind === 'field') (pastUnion ? after : before).push(...describeFields({ [check.name]: check.rule }));
    if (check.kind === 'one-of') {
      pastUnion = true;
      variants = Object.entries(check.variants).map(([value, fields]) => [`${check.tag}: "${value}"`, ...describeFields(fields)]);
    }
  }
  return variants.map((variant) => `{ ${[...before, ...variant, ...after].join(', ')} }`).join(' | ');
}

/** The checks in order, each with the errors it answers: `roomId (ROOM_ID_REQUIRED, ROOM_NOT_FOUND) → room (…)`. */
export function describeChecks(checks: readonly Check[]): string {
  return checks
    .map((check) => {
      switch (check.kind) {
        case 'field':
          return `${check.name} (${check.rule.errors.join(', ')})`;
        case 'server':
          return `${check.name} (${check.errors.join(', ')})`;
        case 'one-of': {
          const variants = Object.entries(check.variants).map(([value, fields]) => {
            const rules = Object.entries(fields).map(([name, rule]) => `${name} (${rule.errors.join(', ')})`);
            return `${value}: ${rules.join(' → ')}`;
          });
          return `${check.tag} (${check.tagError}) → [${variants.join('; ')}]`;
        }
      }
    })
    .join(' → ');
}

/** Every error the checks can answer, first-checked first, each once. */
export function errorsOf(checks: readonly Check[]): ErrorCode[] {
  const codes: ErrorCode[] = [];
  for (const check of checks) {
    if (check.kind === 'field') codes.push(...check.rule.errors);
    if (check.kind === 'server') codes.push(...check.errors);
    if (check.kind === 'one-of') {
      codes.push(check.tagError);
      for (const fields of Object.values(check.variants)) {
        for (const rule of Object.values(fields)) codes.push(...rule.errors);
      }
    }
  }
  return [...new Set(codes)];
}
