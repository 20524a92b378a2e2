// Every Avro long of every schema (plain, timestamp-millis, inside unions and arrays) against the documented range
// ±(2^53 − 1): exact inside it, CODEC_INVALID naming the field and the value outside it, in both directions. The
// fields are found by walking the schemas, so a long added later is covered without touching this file.
import { readFileSync } from 'node:fs';
import avsc from 'avsc';
import { describe, expect, it } from 'vitest';
import { CodecError } from '../../src/common/errors.ts';
import { MAX_LONG, RECORD_KINDS, SINGLE_OBJECT_MAGIC, defaultCodec, fingerprintToBytes, schemaFingerprint, type RecordKind } from '../../src/codec/index.ts';
import { samples } from '../fixtures/avro/samples.ts';

const codec = defaultCodec();
const schemaDir = new URL('../../schemas/avro/', import.meta.url);
const readSchema = (file: string): unknown => JSON.parse(readFileSync(new URL(file, schemaDir), 'utf8'));

/** A reference 64-bit long (bigint, the whole two's complement range): what a correct writer in another language puts on the wire. */
const BIG_LONG = avsc.types.LongType.__with({
  fromBuffer: (buf: Buffer): bigint => buf.readBigInt64LE(0),
  toBuffer: (n: bigint | number): Buffer => {
    const buf = Buffer.alloc(8);
    buf.writeBigInt64LE(BigInt(n));
    return buf;
  },
  fromJSON: (v: unknown): bigint => BigInt(v as number),
  toJSON: (n: bigint): number => Number(n),
  isValid: (n: unknown): boolean => typeof n === 'bigint' || Number.isInteger(n),
  compare: (a: bigint, b: bigint): number => (a === b ? 0 : a < b ? -1 : 1),
});

function referenceType(schema: unknown): avsc.Type {
  const isLong = (s: unknown): boolean => s === 'long' || (typeof s === 'object' && s !== null && (s as { type?: unknown }).type === 'long');
  return avsc.Type.forSchema(schema as avsc.Schema, { wrapUnions: false, registry: {}, typeHook: (s) => (isLong(s) ? BIG_LONG : undefined) });
}

/** Single-object bytes of `value` written by the reference writer with `schema`. */
function referenceBytes(schema: unknown, value: unknown): Buffer {
  return Buffer.concat([SINGLE_OBJECT_MAGIC, fingerprintToBytes(schemaFingerprint(schema)), referenceType(schema).toBuffer(value)]);
}

type Step = string | 0;
interface LongField {
  kind: RecordKind;
  steps: Step[];
  /** The path as the codec's errors name it. */
  path: string;
  logicalType: string | undefined;
}

/** The long fields of a schema's JSON, with the steps to reach them (0 for the first array item). */
function longFields(kind: RecordKind, schema: unknown): LongField[] {
  const out: LongField[] = [];
  const walk = (s: unknown, steps: Step[]): void => {
    if (Array.isArray(s)) {
      for (const branch of s) walk(branch, steps);
      return;
    }
    const obj = (typeof s === 'object' && s !== null ? s : { type: s }) as Record<string, unknown>;
    if (typeof obj.type === 'object') return walk(obj.type, steps);
    if (obj.type === 'long') {
      const path = steps.map((st, i) => (st === 0 ? '[0]' : i === 0 ? st : `.${st}`)).join('');
      out.push({ kind, steps, path, logicalType: obj.logicalType as string | undefined });
    } else if (obj.type === 'record') {
      for (const f of obj.fields as { name: string; type: unknown }[]) walk(f.type, [...steps, f.name]);
    } else if (obj.type === 'array') {
      walk(obj.items, [...steps, 0]);
    } else if (obj.type === 'map') {
      walk(obj.values, [...steps, 'k']);
    }
  };
  walk(schema, []);
  return out;
}

/** A copy of `record` with the value at `steps` replaced; only the containers along the path are copied (Buffers stay Buffers). */
function withValue<T>(record: T, steps: Step[], value: unknown): T {
  const set = (node: unknown, i: number): unknown => {
    if (i === steps.length) return value;
    const step = steps[i] as Step;
    const copy = (Array.isArray(node) ? [...node] : { ...(node as object) }) as Record<string | number, unknown>;
    copy[step] = set(copy[step] ?? (steps[i + 1] === 0 ? [{}] : {}), i + 1);
    return copy;
  };
  return set(record, 0) as T;
}

function codecError(fn: () => unknown): CodecError {
  try {
    fn();
  } catch (err) {
    if (err instanceof CodecError) return err;
    throw new Error(`expected a CodecError, got ${String(err)}`, { cause: err });
  }
  throw new Error('expected a CodecError, got success');
}

const CURRENT = RECORD_KINDS.map((kind) => ({ kind, schema: readSchema(`${kind}.avsc`) }));
const FIELDS = CURRENT.flatMap(({ kind, schema }) => longFields(kind, schema));
const HISTORY = [
  { kind: 'ModelUpdate' as const, schema: readSchema('history/ModelUpdate.v0.avsc') },
  { kind: 'ModelVersion' as const, schema: readSchema('history/ModelVersion.v0.avsc') },
];

/** Inside the range, including the values where a float computation goes wrong (below −2^52, sign flips). */
const EXACT = [0, 1, -1, 63, -64, 2 ** 31, -(2 ** 31) - 1, 2 ** 52, -(2 ** 52), -(2 ** 52) - 1, -(2 ** 52) - 3, 8.64e15, -8.64e15, MAX_LONG - 1, MAX_LONG, -MAX_LONG + 1, -MAX_LONG];
/** Outside it, as exact 64-bit values: the 2^53 + 1, both ends of the long range, timestamps 290,000 years out. */
const BEYOND = [2n ** 53n, 2n ** 53n + 1n, -(2n ** 53n), -(2n ** 53n) - 1n, 2n ** 62n, -(2n ** 62n), 2n ** 63n - 1n, -(2n ** 63n)];

describe('Avro longs: exact within ±(2^53 − 1), refused beyond, for every long field', () => {
  it('finds the long fields of every schema, timestamp-millis, union and array ones included', () => {
    const paths = FIELDS.map((f) => `${f.kind}.${f.path}`);
    expect(paths).toEqual(expect.arrayContaining([
      'ModelUpdate.createdAt',
      'ModelVersion.contributors[0].numExamples',
      'RoundControl.deadline',
      'TelemetryEvent.round',
      'TelemetryEvent.eventTime',
      'AuditEvent.version',
    ]));
    expect(FIELDS.filter((f) => f.logicalType === 'timestamp-millis').length).toBeGreaterThanOrEqual(6);
    expect(FIELDS.length).toBeGreaterThanOrEqual(20);
  });

  it.each(FIELDS.map((f) => [`${f.kind}.${f.path}`, f] as const))('%s: round-trips every boundary value exactly, on the same bytes as a 64-bit writer', (_name, f) => {
    const schema = CURRENT.find((c) => c.kind === f.kind)?.schema;
    for (const n of EXACT) {
      const value = withValue(samples()[f.kind], f.steps, n);
      const bytes = codec.encode(f.kind, value as never);
      expect(bytes.equals(referenceBytes(schema, value)), `${f.path} = ${n}`).toBe(true);
      const back = codec.decode(f.kind, bytes);
      expect(back, `${f.path} = ${n}`).toEqual(value);
    }
  });

  it.each(FIELDS.map((f) => [`${f.kind}.${f.path}`, f] as const))('%s: encoding a value beyond the range or not an integer is CODEC_INVALID naming the field and the value', (_name, f) => {
    for (const bad of [2 ** 53, -(2 ** 53), 2 ** 63, -(2 ** 63), 1e300, 1.5, -0.5, NaN, Infinity, -Infinity, 2n ** 53n + 1n, '5']) {
      const err = codecError(() => codec.encode(f.kind, withValue(samples()[f.kind], f.steps, bad) as never));
      expect(err.code, `${f.path} = ${String(bad)}`).toBe('CODEC_INVALID');
      expect(err.details.field).toBe(f.path);
      expect(err.message).toContain(f.path);
      const shown = typeof bad === 'bigint' ? `${bad}n` : JSON.stringify(bad) ?? String(bad);
      expect(err.message, `${f.path} = ${String(bad)}`).toContain(shown === 'null' ? 'null' : shown);
    }
  });

  it.each(FIELDS.map((f) => [`${f.kind}.${f.path}`, f] as const))('%s: decoding a wire long beyond the range is CODEC_INVALID naming the field and the value, never a rounded number', (_name, f) => {
    const schema = CURRENT.find((c) => c.kind === f.kind)?.schema;
    for (const big of BEYOND) {
      const bytes = referenceBytes(schema, withValue(samples()[f.kind], f.steps, big));
      for (const decode of [() => codec.decode(f.kind, bytes), () => codec.decodeView(f.kind, bytes), () => codec.decodeAny(bytes)]) {
        const err = codecError(decode);
        expect(err.code, `${f.path} = ${big}`).toBe('CODEC_INVALID');
        expect(err.details.field).toBe(f.path);
        expect(err.message).toContain(String(big));
      }
    }
  });

  it('a negative zero encodes as the long 0 (Avro has no −0) and reads back as 0', () => {
    const value = { ...samples().TelemetryEvent, eventTime: -0 };
    expect(Object.is(codec.decode('TelemetryEvent', codec.encode('TelemetryEvent', value)).eventTime, 0)).toBe(true);
  });
});

describe('Avro longs written with the history schemas resolve exactly into the current ones', () => {
  const historyFields = HISTORY.flatMap(({ kind, schema }) => longFields(kind, schema).map((f) => ({ ...f, schema })));

  it('covers the timestamp-millis fields of the history schemas', () => {
    expect(historyFields.map((f) => `${f.kind}.${f.path}`)).toEqual(expect.arrayContaining(['ModelUpdate.createdAt', 'ModelVersion.createdAt']));
  });

  it.each(historyFields.map((f) => [`${f.kind}.${f.path} (v0)`, f] as const))('%s: exact within the range, CODEC_INVALID beyond it', (_name, f) => {
    // A v0 record: the current sample without the fields v0 did not have.
    const v0Names = new Set((f.schema as { fields: { name: string }[] }).fields.map((x) => x.name));
    const base = Object.fromEntries(Object.entries(samples()[f.kind]).filter(([k]) => v0Names.has(k)));
    for (const n of EXACT) {
      const back = codec.decode(f.kind, referenceBytes(f.schema, withValue(base, f.steps, n))) as unknown as Record<string, unknown>;
      let got: unknown = back;
      for (const step of f.steps) got = (got as Record<string | number, unknown>)[step];
      expect(got, `${f.path} = ${n}`).toBe(n);
    }
    for (const big of BEYOND) {
      const err = codecError(() => codec.decode(f.kind, referenceBytes(f.schema, withValue(base, f.steps, big))));
      expect(err.code).toBe('CODEC_INVALID');
      expect(err.details.field).toBe(f.path);
      expect(err.message).toContain(String(big));
    }
  });
});
