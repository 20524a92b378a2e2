import { readFileSync } from 'node:fs';
import avsc from 'avsc';
import { describe, expect, it } from 'vitest';
import {
  CRC64_AVRO_EMPTY,
  crc64Avro,
  fingerprintFromBytes,
  fingerprintHex,
  fingerprintToBytes,
  parsingCanonicalForm,
  schemaFingerprint,
} from '../../src/codec/index.ts';

interface SpecCase {
  input: string;
  canonical: string;
  fingerprint: string;
}
const spec = JSON.parse(readFileSync(new URL('../fixtures/avro/avro-schema-tests.json', import.meta.url), 'utf8')) as { cases: SpecCase[] };

/** CRC-64-AVRO one bit at a time, no table: an independent reading of the spec's polynomial arithmetic. */
function bitwiseCrc64(bytes: Uint8Array): bigint {
  let fp = CRC64_AVRO_EMPTY;
  for (const byte of bytes) {
    fp ^= BigInt(byte);
    for (let bit = 0; bit < 8; bit++) fp = fp & 1n ? (fp >> 1n) ^ CRC64_AVRO_EMPTY : fp >> 1n;
  }
  return fp;
}

function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s;
  };
}

describe('crc64Avro', () => {
  it('gives EMPTY for zero bytes, as the spec defines', () => {
    expect(crc64Avro(new Uint8Array())).toBe(0xc15d213aa4d7a795n);
  });

  it('agrees with a bit-by-bit implementation on random inputs', () => {
    const next = prng(42);
    for (let len = 0; len < 200; len += 7) {
      const bytes = Uint8Array.from({ length: len }, () => next() & 0xff);
      expect(crc64Avro(bytes)).toBe(bitwiseCrc64(bytes));
    }
  });

  it('matches the spec value for "int" (0x7275d51a3f395c8f)', () => {
    expect(crc64Avro(Buffer.from('"int"'))).toBe(0x7275d51a3f395c8fn);
    expect(bitwiseCrc64(Buffer.from('"int"'))).toBe(0x7275d51a3f395c8fn);
  });
});

describe('parsingCanonicalForm and schemaFingerprint against Avro\'s schema-tests.txt', () => {
  it.each(spec.cases.map((c) => [c.input.replace(/\s+/g, ' ').slice(0, 60), c] as const))('%s', (_label, c) => {
    const schema: unknown = JSON.parse(c.input);
    expect(parsingCanonicalForm(schema)).toBe(c.canonical);
    const fp = schemaFingerprint(schema);
    expect(BigInt.asIntN(64, fp)).toBe(BigInt(c.fingerprint));
    expect(bitwiseCrc64(Buffer.from(c.canonical))).toBe(fp);
  });

  it('strips logical types, docs, defaults and aliases, and qualifies nested names', () => {
    const schema = {
      type: 'record',
      name: 'R',
      namespace: 'io.x',
      doc: 'd',
      fields: [
        { name: 't', type: { type: 'long', logicalType: 'timestamp-millis' }, doc: 'x', default: 0 },
        { name: 'e', type: { type: 'enum', name: 'E', symbols: ['A'] } },
        { name: 'e2', type: 'E' },
        { name: 'o', type: { type: 'enum', name: 'other.E', symbols: ['B'] } },
        { name: 'n', type: { type: 'fixed', name: 'F', namespace: '', size: 4 } },
      ],
    };
    expect(parsingCanonicalForm(schema)).toBe(
      '{"name":"io.x.R","type":"record","fields":[{"name":"t","type":"long"},' +
        '{"name":"e","type":{"name":"io.x.E","type":"enum","symbols":["A"]}},{"name":"e2","type":"io.x.E"},' +
        '{"name":"o","type":{"name":"other.E","type":"enum","symbols":["B"]}},{"name":"n","type":{"name":"F","type":"fixed","size":4}}]}',
    );
  });

  it('agrees with avsc\'s canonical schema for every FedStream schema', () => {
    const dir = new URL('../../schemas/avro/', import.meta.url);
    for (const file of ['ModelUpdate', 'ModelVersion', 'RoundControl', 'TelemetryEvent', 'AuditEvent', 'history/ModelUpdate.v0']) {
      const schema: unknown = JSON.parse(readFileSync(new URL(`${file}.avsc`, dir), 'utf8'));
      const type = avsc.Type.forSchema(schema as avsc.Schema, { registry: {} });
      expect(parsingCanonicalForm(schema), file).toBe(JSON.stringify(type.schema()));
    }
  });

  it('rejects what is not a schema with CODEC_INVALID naming the place', () => {
    expect(() => parsingCanonicalForm({ type: 'record', name: 'R', fields: [{ name: 'x' }] })).toThrow(expect.objectContaining({ code: 'CODEC_INVALID' }));
    expect(() => parsingCanonicalForm({ type: 'enum', name: 'E' })).toThrow(/enum without symbols/);
    expect(() => parsingCanonicalForm(42)).toThrow(/<root>/);
  });
});

describe('fingerprint bytes', () => {
  it('are little-endian on the wire and hex shows the value most significant first', () => {
    const fp = 0x7275d51a3f395c8fn;
    const bytes = fingerprintToBytes(fp);
    expect(bytes.toString('hex')).toBe('8f5c393f1ad57572');
    expect(fingerprintFromBytes(bytes)).toBe(fp);
    expect(fingerprintFromBytes(Buffer.concat([Buffer.from([1, 2]), bytes]), 2)).toBe(fp);
    expect(fingerprintHex(fp)).toBe('7275d51a3f395c8f');
    expect(fingerprintHex(0x1n)).toBe('0000000000000001');
    expect(fingerprintHex(-1n)).toBe('ffffffffffffffff');
  });
});
