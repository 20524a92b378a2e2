/**
 * What the property-based fuzzers (test/unit/fuzz-*.test.ts) share: how many cases, which seed, and the property
 * every target must keep — a value, or a typed FedStreamError that says where, quickly.
 *
 * - `FEDSTREAM_FUZZ_RUNS` multiplies every fuzzer's case count (default 1: the CI budget; `npm run fuzz` sets 20).
 * - `FEDSTREAM_FUZZ_SEED` sets the seed (default: fixed, so CI is reproducible; `npm run fuzz` draws one and prints it).
 * fast-check prints the seed and the shrunk counterexample of a failure; rerun with that seed to reproduce it.
 */
import type avsc from 'avsc';
import fc from 'fast-check';
import { MAX_LONG } from '../../src/codec/index.ts';
import { ErrorCodes, FedStreamError } from '../../src/common/errors.ts';

const multiplier = Number(process.env.FEDSTREAM_FUZZ_RUNS ?? '1');
const seedFromEnv = process.env.FEDSTREAM_FUZZ_SEED;

/** Time for one fuzz test: a minute per base run count on a loaded 2-core machine, times FEDSTREAM_FUZZ_RUNS. */
export const FUZZ_TIMEOUT_MS = 60_000 * (Number.isFinite(multiplier) && multiplier > 0 ? Math.max(1, multiplier) : 1);

/** Longest one case may take, in ms: generous for a loaded 2-core machine; a hang or a quadratic blow-up is far beyond. */
export const CASE_BUDGET_MS = Number(process.env.FEDSTREAM_FUZZ_CASE_MS ?? '2000');

/** fast-check parameters for `numRuns` base cases (× FEDSTREAM_FUZZ_RUNS), seeded. */
export function fuzzParams<T>(name: string, numRuns: number): fc.Parameters<T> {
  const runs = Math.max(1, Math.round(numRuns * (Number.isFinite(multiplier) && multiplier > 0 ? multiplier : 1)));
  const seed = seedFromEnv !== undefined ? Number(seedFromEnv) : fixedSeed(name);
  if (seedFromEnv !== undefined) console.log(`fuzz ${name}: ${runs} cases, seed ${seed}`);
  return { numRuns: runs, seed, endOnFailure: false };
}

/** A stable seed per fuzzer name (CI explores the same cases every run). */
function fixedSeed(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return h | 0;
}

/** What `typed` found: the value, or the typed error. */
export type Outcome<T> = { ok: true; value: T } | { ok: false; error: FedStreamError };

/**
 * Runs `fn` once: returns its value, or the FedStreamError it threw after checking that the error has a known code,
 * a message and says where (`where(error)` true). Anything else thrown, or a call over CASE_BUDGET_MS, fails the case.
 */
export function typed<T>(fn: () => T, where: (e: FedStreamError) => boolean): Outcome<T> {
  const started = performance.now();
  let outcome: Outcome<T>;
  try {
    outcome = { ok: true, value: fn() };
  } catch (err) {
    if (!(err instanceof FedStreamError)) {
      throw new Error(`not a FedStreamError: ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`, { cause: err });
    }
    if (!Object.hasOwn(ErrorCodes, err.code)) throw new Error(`unknown error code ${err.code}`, { cause: err });
    if (!err.message) throw new Error(`${err.code} without a message`, { cause: err });
    if (!where(err)) throw new Error(`${err.code} does not say where: ${err.message} ${JSON.stringify(err.details)}`, { cause: err });
    outcome = { ok: false, error: err };
  }
  const took = performance.now() - started;
  if (took > CASE_BUDGET_MS) throw new Error(`one case took ${took.toFixed(0)} ms (budget ${CASE_BUDGET_MS} ms)`);
  return outcome;
}

/** A codec error says where: a byte offset or a field path in its details. */
export function codecWhere(e: FedStreamError): boolean {
  return typeof e.details.offset === 'number' || (typeof e.details.field === 'string' && e.details.field !== '');
}

/** Integers a long may hold, weighted towards the edges of ±MAX_LONG and of the varint byte lengths. */
export const longArb: fc.Arbitrary<number> = fc.oneof(
  fc.integer({ min: -1000, max: 1000 }),
  fc.integer(),
  fc.maxSafeInteger(),
  fc.constantFrom(MAX_LONG, -MAX_LONG, MAX_LONG - 1, 2 ** 52, -(2 ** 52) - 1, 2 ** 31, -(2 ** 31) - 1, 2 ** 49, 8.64e15),
);

/** Strings: any code point, sometimes a lone surrogate, sometimes long. */
export const stringArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 6, arbitrary: fc.string({ unit: 'binary', maxLength: 12 }) },
  { weight: 1, arbitrary: fc.string({ unit: fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c)), minLength: 1, maxLength: 3 }) },
  { weight: 1, arbitrary: fc.string({ maxLength: 2000 }) },
);

/** The parts of avsc's type objects the arbitrary reads (public properties of avsc 5). */
interface TypeView {
  typeName: string;
  fields?: { name: string; type: avsc.Type }[];
  itemsType?: avsc.Type;
  valuesType?: avsc.Type;
  types?: avsc.Type[];
  symbols?: string[];
  size?: number;
  underlyingType?: avsc.Type;
}

/** Values of an avsc type as the codec represents them (longs as safe integers, floats as float32 values, bytes as Buffers). */
export function avroArbitrary(type: avsc.Type): fc.Arbitrary<unknown> {
  const t = type as unknown as TypeView;
  switch (t.typeName) {
    case 'null': return fc.constant(null);
    case 'boolean': return fc.boolean();
    case 'int': return fc.integer();
    case 'long':
    case 'abstract:long': return longArb;
    case 'float': return fc.float();
    case 'double': return fc.double();
    case 'string': return stringArb;
    case 'bytes': return fc.uint8Array({ maxLength: 48 }).map((a) => Buffer.from(a));
    case 'fixed': return fc.uint8Array({ minLength: t.size ?? 0, maxLength: t.size ?? 0 }).map((a) => Buffer.from(a));
    case 'enum': return fc.constantFrom(...(t.symbols ?? []));
    case 'array': return fc.array(avroArbitrary(t.itemsType as avsc.Type), { maxLength: 3 });
    case 'map': return fc.dictionary(stringArb, avroArbitrary(t.valuesType as avsc.Type), { maxKeys: 3, noNullPrototype: true });
    case 'record': {
      const shape: Record<string, fc.Arbitrary<unknown>> = {};
      for (const f of t.fields ?? []) shape[f.name] = avroArbitrary(f.type);
      return fc.record(shape);
    }
    default:
      if (t.typeName.startsWith('union')) return fc.oneof(...(t.types ?? []).map((b) => avroArbitrary(b)));
      if (t.typeName.startsWith('logical:') && t.underlyingType) return avroArbitrary(t.underlyingType);
      throw new Error(`no arbitrary for Avro type ${t.typeName}`);
  }
}

/** Text of a chunk header: valid decimals and the hostile ones (huge, negative, padded, not ASCII digits, empty). */
export const decimalHeaderArb: fc.Arbitrary<string> = fc.oneof(
  fc.nat({ max: 6000 }).map(String),
  fc.constantFrom('0', '1', '2', '9007199254740991', '9007199254740993', '99999999999999999999', '1e3', '-1', '01', '1.0', ' 1', '', 'abc', '0x10', '\uff11', 'NaN', 'Infinity'),
  fc.string({ maxLength: 6 }),
);

/** A header value as a client may hand it over: text, bytes (maybe not UTF-8), or repeated. */
export function headerValueArb(text: fc.Arbitrary<string>): fc.Arbitrary<string | Buffer | (string | Buffer)[]> {
  return fc.oneof(
    { weight: 6, arbitrary: text },
    { weight: 2, arbitrary: text.map((t) => Buffer.from(t)) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 8 }).map((a) => Buffer.from(a)) },
    { weight: 1, arbitrary: fc.array(fc.oneof(text, text.map((t) => Buffer.from(t))), { minLength: 1, maxLength: 3 }) },
  );
}

/** A deterministic shuffle with redeliveries and losses: `picks` index into `items` (modulo its length). */
export function pick<T>(items: readonly T[], picks: readonly number[]): T[] {
  return items.length === 0 ? [] : picks.map((p) => items[p % items.length] as T);
}
