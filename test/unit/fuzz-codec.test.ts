// Property-based fuzzing of the Avro codec (issue 13, "Fuzzing"): generated records of every kind, arbitrary bytes,
// and valid messages mutated (bit flips, truncations, extensions, length and count fields set to huge values).
// Every input gives a value or a CodecError naming a byte offset or a field path, quickly; what decodes re-encodes;
// and decoding hostile lengths stays within a small heap (a child process with a 64 MB limit).
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  RECORD_KINDS,
  SINGLE_OBJECT_MAGIC,
  defaultCodec,
  fingerprintToBytes,
  unpackTensors,
  type RecordKind,
  type TensorRecord,
} from '../../src/codec/index.ts';
import { parseType } from '../../src/codec/schemas.ts';
import { avroArbitrary, codecWhere, FUZZ_TIMEOUT_MS, fuzzParams, typed } from '../support/fuzz.ts';

const codec = defaultCodec();
const kindArb = fc.constantFrom(...RECORD_KINDS);
const recordArbs = Object.fromEntries(
  RECORD_KINDS.map((kind) => {
    const schema = JSON.parse(readFileSync(new URL(`../../schemas/avro/${kind}.avsc`, import.meta.url), 'utf8')) as unknown;
    return [kind, avroArbitrary(parseType(schema, kind))];
  }),
) as Record<RecordKind, fc.Arbitrary<unknown>>;
/** A kind and a valid record of it. */
const messageArb = kindArb.chain((kind) => recordArbs[kind].map((value) => ({ kind, value })));

/** Varint bytes of a zig-zag encoded 64-bit value (as the spec writes it). */
function varint(zigzag: bigint): number[] {
  const out: number[] = [];
  let z = BigInt.asUintN(64, zigzag);
  do {
    const b = Number(z & 0x7fn);
    z >>= 7n;
    out.push(z ? b | 0x80 : b);
  } while (z);
  return out;
}

type Mutation =
  | { op: 'flip'; at: number; bit: number }
  | { op: 'set'; at: number; byte: number }
  | { op: 'truncate'; at: number }
  | { op: 'extend'; bytes: number[] }
  | { op: 'huge'; at: number; value: bigint }
  | { op: 'repeat'; at: number; length: number; times: number };

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ op: fc.constant('set' as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ op: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ op: fc.constant('extend' as const), bytes: fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 12 }) }),
  // A length, count or long replaced by a huge (or negative, or 10-byte) varint: the "length field set to a huge value".
  fc.record({
    op: fc.constant('huge' as const),
    at: fc.nat(),
    value: fc.oneof(fc.bigInt({ min: 2n ** 20n, max: 2n ** 64n - 1n }), fc.constantFrom(2n ** 31n, 2n ** 32n, 2n ** 53n, 2n ** 63n, 2n ** 64n - 1n, 1n, 3n, 2n ** 31n - 1n)),
  }),
  fc.record({ op: fc.constant('repeat' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 16 }), times: fc.integer({ min: 2, max: 50 }) }),
);

/** Applies mutations to the body (bytes 10..) of a message; the header is mutated only by 'flip' and 'set'. */
function mutate(message: Buffer, mutations: Mutation[]): Buffer {
  let bytes = Buffer.from(message);
  for (const m of mutations) {
    const at = bytes.length === 0 ? 0 : m.op === 'flip' || m.op === 'set' ? ('at' in m ? m.at : 0) % bytes.length : 10 + (('at' in m ? m.at : 0) % Math.max(1, bytes.length - 10));
    switch (m.op) {
      case 'flip': if (bytes.length) bytes[at] = (bytes[at] as number) ^ (1 << m.bit); break;
      case 'set': if (bytes.length) bytes[at] = m.byte; break;
      case 'truncate': bytes = bytes.subarray(0, at); break;
      case 'extend': bytes = Buffer.concat([bytes, Buffer.from(m.bytes)]); break;
      case 'huge': {
        // Replace the varint starting at `at` (its continuation bytes included) by the huge one.
        let end = at;
        while (end < bytes.length && ((bytes[end] as number) & 0x80) !== 0) end++;
        bytes = Buffer.concat([bytes.subarray(0, at), Buffer.from(varint(m.value)), bytes.subarray(Math.min(bytes.length, end + 1))]);
        break;
      }
      case 'repeat': {
        const slice = bytes.subarray(at, at + m.length);
        bytes = Buffer.concat([bytes.subarray(0, at), ...Array<Buffer>(m.times).fill(slice), bytes.subarray(at)]);
        break;
      }
    }
  }
  return bytes;
}

/** Decodes `bytes` every way the pipeline does; each gives a record or a CodecError that says where. Returns the records. */
function decodeEveryWay(kind: RecordKind, bytes: Buffer): { kind: RecordKind; value: unknown }[] {
  const out: { kind: RecordKind; value: unknown }[] = [];
  for (const decode of [() => ({ kind, value: codec.decode(kind, bytes) }), () => ({ kind, value: codec.decodeView(kind, bytes) }), () => codec.decodeAny(bytes)]) {
    const r = typed(decode, codecWhere);
    if (r.ok) out.push(r.value);
    else expect(r.error.name).toMatch(/CodecError/);
  }
  return out;
}

/** What a reader does next with a record it decoded: re-encodes it (the dead-letter inspector) and unpacks its tensors. */
function useDecoded(kind: RecordKind, value: unknown): void {
  const again = typed(() => codec.encode(kind, value as never), codecWhere);
  // A decoded record is always encodable again, and reads back the same.
  if (!again.ok) throw new Error(`decoded ${kind} does not encode again: ${again.error.message}`);
  expect(codec.decode(kind, again.value)).toEqual(value);
  const tensors = (value as { tensors?: TensorRecord[] }).tensors;
  if (tensors) typed(() => unpackTensors(tensors), codecWhere);
}

describe('fuzz: the Avro codec', { timeout: FUZZ_TIMEOUT_MS }, () => {
  it('generated records of every kind encode and decode back to themselves, or are refused naming the field', () => {
    fc.assert(
      fc.property(messageArb, ({ kind, value }) => {
        const r = typed(() => codec.encode(kind, value as never), codecWhere);
        if (!r.ok) return;
        expect(codec.decode(kind, r.value)).toEqual(value);
        expect(codec.decodeAny(r.value).value).toEqual(value);
      }),
      fuzzParams('codec.roundtrip', 1500),
    );
  });

  it('arbitrary bytes, with or without a known header: a record or a CodecError naming the offset or field', () => {
    const headers = RECORD_KINDS.map((k) => Buffer.concat([SINGLE_OBJECT_MAGIC, fingerprintToBytes(codec.fingerprint(k))]));
    fc.assert(
      fc.property(kindArb, fc.oneof(fc.constant(-1), fc.integer({ min: 0, max: headers.length - 1 })), fc.uint8Array({ maxLength: 200 }), (kind, header, body) => {
        const bytes = header < 0 ? Buffer.from(body) : Buffer.concat([headers[header] as Buffer, body]);
        for (const decoded of decodeEveryWay(kind, bytes)) useDecoded(decoded.kind, decoded.value);
      }),
      fuzzParams('codec.arbitrary-bytes', 2000),
    );
  });

  it('valid messages mutated (bit flips, truncations, extensions, huge lengths and counts, repeats): a record or a CodecError naming where', () => {
    fc.assert(
      fc.property(messageArb, fc.array(mutationArb, { minLength: 1, maxLength: 4 }), ({ kind, value }, mutations) => {
        const encoded = typed(() => codec.encode(kind, value as never), codecWhere);
        if (!encoded.ok) return;
        for (const decoded of decodeEveryWay(kind, mutate(encoded.value, mutations))) useDecoded(decoded.kind, decoded.value);
      }),
      fuzzParams('codec.mutated', 3000),
    );
  });

  it('encoding a record with one field replaced by anything: bytes that read back the same, or CODEC_INVALID naming the field', () => {
    const anyValue = fc.oneof(
      fc.anything({ maxDepth: 2, withBigInt: true, withBoxedValues: true, withMap: true, withSet: true, withTypedArray: true, withDate: true, withNullPrototype: true, withSparseArray: true }),
      fc.constantFrom(NaN, Infinity, -Infinity, -0, 2 ** 53, -(2 ** 63), 1e308, Number.MIN_VALUE, '', 'x'.repeat(100_000), [], {}, Buffer.alloc(0)),
    );
    fc.assert(
      fc.property(messageArb, fc.nat(), anyValue, ({ kind, value }, which, replacement) => {
        const keys = Object.keys(value as object);
        const key = keys[which % keys.length] as string;
        const changed = { ...(value as object), [key]: replacement };
        const r = typed(() => codec.encode(kind, changed as never), codecWhere);
        if (!r.ok) {
          expect(r.error.code).toBe('CODEC_INVALID');
          return;
        }
        const back = codec.decode(kind, r.value) as unknown as Record<string, unknown>;
        // A long has no −0 (docs/wire-format.md): −0 is written as 0 (a double keeps it). An optional field left
        // undefined is written as null.
        const expected =
          Object.is(replacement, -0) && Object.is(back[key], 0) ? { ...changed, [key]: 0 } : replacement === undefined && back[key] === null ? { ...changed, [key]: null } : changed;
        expect(back).toEqual(expected);
      }),
      fuzzParams('codec.encode-anything', 1500),
    );
  });

  it('huge length and count fields stay within a 64 MB heap and 64 MB of buffers (a child process)', () => {
    const runs = fuzzParams('codec.heap', 800).numRuns;
    const child = spawnSync(process.execPath, ['--max-old-space-size=64', '--import', 'tsx', new URL('../support/fuzz-heap-child.ts', import.meta.url).pathname, String(runs)], {
      encoding: 'utf8',
      timeout: 120_000,
      env: { ...process.env, NODE_OPTIONS: '' },
    });
    expect(child.stderr.trim().split('\n').filter((l) => l && !l.startsWith('(node')).join('\n')).toBe('');
    expect(child.status).toBe(0);
    expect(child.stdout).toMatch(new RegExp(`^heap fuzz: ${runs} cases`, 'm'));
  });
});
