// One file past 400 lines on purpose: every test here walks the same schema fixtures (test/fixtures/avro) through
// AvroCodec, encode → resolve → decode; split by topic, each half would reload and re-explain them.
import { mkdtempSync, readFileSync, readdirSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import avsc from 'avsc';
import { describe, expect, it } from 'vitest';
import { CodecError } from '../../src/common/errors.ts';
import {
  AUDIT_ACTIONS,
  AvroCodec,
  CHUNK_HEADERS,
  RECORD_KINDS,
  defaultCodec,
  findRepoRoot,
  MAX_LONG,
  fingerprintToBytes,
  parsingCanonicalForm,
  schemaFingerprint,
  type RecordKind,
} from '../../src/codec/index.ts';
import { samples } from '../fixtures/avro/samples.ts';

const schemaDir = new URL('../../schemas/avro/', import.meta.url);
const readSchema = (file: string): Record<string, unknown> => JSON.parse(readFileSync(new URL(file, schemaDir), 'utf8')) as Record<string, unknown>;
const codec = defaultCodec();

/** Runs `fn` and returns the CodecError it throws; fails on success or on any other exception. */
function codecError(fn: () => unknown): CodecError {
  try {
    fn();
  } catch (err) {
    if (err instanceof CodecError) return err;
    throw new Error(`expected a CodecError, got ${String(err)}`, { cause: err });
  }
  throw new Error('expected a CodecError, got success');
}

function v0Bytes(value: Record<string, unknown>): Buffer {
  const v0 = readSchema('history/ModelUpdate.v0.avsc');
  const type = avsc.Type.forSchema(v0 as avsc.Schema, { wrapUnions: false, registry: {} });
  return Buffer.concat([Buffer.from([0xc3, 0x01]), fingerprintToBytes(schemaFingerprint(v0)), type.toBuffer(value)]);
}

function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe('AvroCodec round trip', () => {
  it.each(RECORD_KINDS)('%s encodes as C3 01 + fingerprint + body and decodes to the same value', (kind) => {
    const value = samples()[kind];
    const bytes = codec.encode(kind, value);
    expect(bytes.subarray(0, 2).toString('hex')).toBe('c301');
    expect(bytes.subarray(2, 10).equals(fingerprintToBytes(codec.fingerprint(kind)))).toBe(true);
    expect(codec.decode(kind, bytes)).toEqual(value);
    const any = codec.decodeAny(bytes);
    expect(any.kind).toBe(kind);
    expect(any.writer).toBe('current');
    expect(any.value).toEqual(value);
  });

  it('keeps longs exact up to ±MAX_LONG (2^53 - 1) and timestamps as millisecond numbers', () => {
    const value = { ...samples().ModelUpdate, numExamples: MAX_LONG, round: -MAX_LONG, createdAt: 0 };
    const back = codec.decode('ModelUpdate', codec.encode('ModelUpdate', value));
    expect(back.numExamples).toBe(MAX_LONG);
    expect(back.round).toBe(-MAX_LONG);
    expect(back.createdAt).toBe(0);
    expect(codecError(() => codec.encode('ModelUpdate', { ...value, round: MAX_LONG + 1 })).details.field).toBe('round');
  });

  it('writes longs as the spec\'s zig-zag varints, exactly, over the whole range (avsc\'s float path is not used)', () => {
    const zigzagVarint = (n: number): string => {
      let z = BigInt.asUintN(64, (BigInt(n) << 1n) ^ (BigInt(n) >> 63n));
      const out: number[] = [];
      do {
        const b = Number(z & 0x7fn);
        z >>= 7n;
        out.push(z ? b | 0x80 : b);
      } while (z);
      return Buffer.from(out).toString('hex');
    };
    const prefix = codec.encode('TelemetryEvent', { ...samples().TelemetryEvent, tenant: 'a', pipeline: 'b', nodeId: 'c', round: null }).subarray(0, 17);
    for (const n of [0, 1, -1, 63, -64, 2 ** 31, -(2 ** 31) - 1, 2 ** 52, -(2 ** 52), -(2 ** 52) - 1, -(2 ** 52) - 3, MAX_LONG - 1, MAX_LONG, -MAX_LONG + 1, -MAX_LONG]) {
      const value = { ...samples().TelemetryEvent, tenant: 'a', pipeline: 'b', nodeId: 'c', round: n };
      const bytes = codec.encode('TelemetryEvent', value);
      // After the 17 bytes of header, tenant, pipeline, nodeId and kind comes the union branch (02) and the long.
      expect(bytes.subarray(0, 17).equals(prefix.subarray(0, 17)), String(n)).toBe(true);
      expect(bytes.subarray(17, 18).toString('hex')).toBe('02');
      expect(bytes.subarray(18).toString('hex').startsWith(zigzagVarint(n)), String(n)).toBe(true);
      expect(codec.decode('TelemetryEvent', bytes).round, String(n)).toBe(n);
    }
  });

  it('accepts a Uint8Array that is a view into a larger buffer', () => {
    const bytes = codec.encode('AuditEvent', samples().AuditEvent);
    const big = new Uint8Array(bytes.length + 20);
    big.set(bytes, 7);
    expect(codec.decode('AuditEvent', big.subarray(7, 7 + bytes.length))).toEqual(samples().AuditEvent);
  });

  it('encodes large tensors (8 MB) without loss', () => {
    const value = samples().ModelVersion;
    value.tensors = [{ name: 'big', shape: [2 * 1024 * 1024], dtype: 'FLOAT32', scale: 1, data: Buffer.alloc(8 * 1024 * 1024, 7) }];
    const back = codec.decode('ModelVersion', codec.encode('ModelVersion', value));
    expect(back.tensors[0]?.data.equals(value.tensors[0]?.data as Buffer)).toBe(true);
  });

  it('lists its writer schemas: five current and the ModelUpdate history', () => {
    const writers = codec.writerSchemas();
    expect(writers.filter((w) => w.current).map((w) => w.kind)).toEqual([...RECORD_KINDS]);
    const v0 = writers.find((w) => !w.current && w.kind === 'ModelUpdate');
    expect(v0?.label).toBe('v0');
    expect(v0?.fingerprint).not.toBe(codec.fingerprint('ModelUpdate'));
    expect(new AvroCodec().fingerprint('RoundControl')).toBe(codec.fingerprint('RoundControl'));
  });
});

describe('AvroCodec rejects bad bytes with CodecErrors', () => {
  const good = codec.encode('ModelUpdate', samples().ModelUpdate);

  it('bad magic: CODEC_BAD_MAGIC at offset 0', () => {
    const json = codecError(() => codec.decode('ModelUpdate', Buffer.from('{"updateId":"x"}')));
    expect(json.code).toBe('CODEC_BAD_MAGIC');
    expect(json.details.offset).toBe(0);
    expect(json.message).toMatch(/looks like JSON/);
    const second = Buffer.from(good);
    second[1] = 0x02;
    expect(codecError(() => codec.decode('ModelUpdate', second)).code).toBe('CODEC_BAD_MAGIC');
    expect(codecError(() => codec.decodeAny(Buffer.from([0x00]))).code).toBe('CODEC_BAD_MAGIC');
  });

  it('empty or null message: CODEC_TRUNCATED', () => {
    expect(codecError(() => codec.decode('ModelUpdate', Buffer.alloc(0))).code).toBe('CODEC_TRUNCATED');
    expect(codecError(() => codec.decode('ModelUpdate', null)).code).toBe('CODEC_TRUNCATED');
  });

  it('unknown fingerprint: CODEC_UNKNOWN_FINGERPRINT naming the fingerprint and the expected kind', () => {
    const bytes = Buffer.from(good);
    bytes.writeBigUInt64LE(0x0123456789abcdefn, 2);
    const err = codecError(() => codec.decode('ModelUpdate', bytes));
    expect(err.code).toBe('CODEC_UNKNOWN_FINGERPRINT');
    expect(err.details).toMatchObject({ fingerprint: '0123456789abcdef', expectedKind: 'ModelUpdate' });
    expect(err.message).toContain('0123456789abcdef');
    expect(err.message).toContain('ModelUpdate');
    expect(codecError(() => codec.decodeAny(bytes)).code).toBe('CODEC_UNKNOWN_FINGERPRINT');
  });

  it('a record of another kind: CODEC_INVALID saying which', () => {
    const err = codecError(() => codec.decode('ModelVersion', good));
    expect(err.code).toBe('CODEC_INVALID');
    expect(err.message).toMatch(/expected a ModelVersion message, got a ModelUpdate/);
  });

  it.each(RECORD_KINDS)('%s cut at every byte position: always CODEC_TRUNCATED with an offset', (kind) => {
    const bytes = codec.encode(kind, samples()[kind]);
    for (let cut = 0; cut < bytes.length; cut++) {
      const err = codecError(() => codec.decode(kind, bytes.subarray(0, cut)));
      expect(err.code, `cut at ${cut}`).toBe('CODEC_TRUNCATED');
      expect(err.details.offset, `cut at ${cut}`).toBeLessThanOrEqual(cut);
      if (cut >= 10) expect(typeof err.details.field, `cut at ${cut}`).toBe('string');
    }
  });

  it('names the field and byte offset where a body is cut', () => {
    const cut = good.length - 3; // inside the last string (backend)
    const err = codecError(() => codec.decode('ModelUpdate', good.subarray(0, cut)));
    expect(err.details.field).toBe('backend');
    expect(err.message).toContain('backend');
  });

  it('names array items and map keys in the path: tensors[i].field, metrics.key, metrics["odd key"]', () => {
    const dbl = (v: number) => { const b = Buffer.alloc(8); b.writeDoubleLE(v); return b; };
    // Cut inside a value the walk reaches (the second map entry: the block's byte bound holds up to there).
    const fieldAtCut = (metrics: Record<string, number>, inside: Buffer) => {
      const bytes = codec.encode('ModelUpdate', { ...samples().ModelUpdate, metrics });
      return codecError(() => codec.decode('ModelUpdate', bytes.subarray(0, bytes.indexOf(inside) + 3))).details.field;
    };
    const bytes = codec.encode('ModelUpdate', samples().ModelUpdate);
    const data1 = codec.decode('ModelUpdate', bytes).tensors[1]!.data;
    expect(codecError(() => codec.decode('ModelUpdate', bytes.subarray(0, bytes.indexOf(Buffer.from(data1)) + 1))).details.field).toBe('tensors[1].data');
    expect(fieldAtCut({ a: 1.25, loss: 0.5 }, dbl(0.5))).toBe('metrics.loss');
    expect(fieldAtCut({ a: 1.25, 'odd key': 2.5 }, dbl(2.5))).toBe('metrics["odd key"]');
  });

  it('trailing bytes: CODEC_INVALID', () => {
    const err = codecError(() => codec.decode('ModelUpdate', Buffer.concat([good, Buffer.from([0])])));
    expect(err.code).toBe('CODEC_INVALID');
    expect(err.details.offset).toBe(good.length);
  });

  it('a corrupt block count fails fast instead of allocating', () => {
    // RoundControl body starts with tenant, pipeline (strings), round, baseVersion, kind; then config (map).
    const head = Buffer.from([0xc3, 0x01]);
    const fp = fingerprintToBytes(codec.fingerprint('RoundControl'));
    const body = Buffer.from([0x02, 0x61, 0x02, 0x62, 0x02, 0x02, 0x00, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f]);
    const started = Date.now();
    const err = codecError(() => codec.decode('RoundControl', Buffer.concat([head, fp, body])));
    expect(Date.now() - started).toBeLessThan(1000);
    expect(err.code).toBe('CODEC_TRUNCATED');
    expect(err.details.field).toBe('config');
  });

  it('bad enum index, union index, varint and UTF-8: CODEC_INVALID naming the field', () => {
    const fp = fingerprintToBytes(codec.fingerprint('TelemetryEvent'));
    const msg = (body: number[]): Buffer => Buffer.concat([Buffer.from([0xc3, 0x01]), fp, Buffer.from(body)]);
    const prefix = [0x02, 0x61, 0x02, 0x62, 0x02, 0x63]; // tenant, pipeline, nodeId
    const enumErr = codecError(() => codec.decode('TelemetryEvent', msg([...prefix, 0x10])));
    expect(enumErr.code).toBe('CODEC_INVALID');
    expect(enumErr.details).toMatchObject({ field: 'kind', offset: 16 });
    const unionErr = codecError(() => codec.decode('TelemetryEvent', msg([...prefix, 0x00, 0x08])));
    expect(unionErr.details.field).toBe('round');
    expect(unionErr.message).toMatch(/union index 4/);
    const varint = codecError(() => codec.decode('TelemetryEvent', msg([...prefix, 0x00, 0x02, ...Array<number>(11).fill(0xff)])));
    expect(varint.details.field).toBe('round');
    expect(varint.message).toMatch(/longer than 10 bytes/);
    const utf8 = codecError(() => codec.decode('TelemetryEvent', msg([0x02, 0xff])));
    expect(utf8.details.field).toBe('tenant');
    expect(utf8.message).toMatch(/UTF-8/);
  });

  it('longs beyond MAX_LONG: CODEC_INVALID rather than a silently different number', () => {
    const fp = fingerprintToBytes(codec.fingerprint('TelemetryEvent'));
    // round = Some(2^60): zig-zag 2^61 as a varint.
    const big = [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x20];
    const bytes = Buffer.concat([Buffer.from([0xc3, 0x01]), fp, Buffer.from([0x02, 0x61, 0x02, 0x62, 0x02, 0x63, 0x00, 0x02, ...big])]);
    const err = codecError(() => codec.decode('TelemetryEvent', bytes));
    expect(err.code).toBe('CODEC_INVALID');
    expect(err.details.field).toBe('round');
  });

  it('random corruption never escapes as anything but a CodecError', () => {
    const rand = prng(7);
    let decoded = 0;
    for (let i = 0; i < 3000; i++) {
      const kind = RECORD_KINDS[i % RECORD_KINDS.length] as RecordKind;
      const bytes = Buffer.from(codec.encode(kind, samples()[kind]));
      const flips = 1 + Math.floor(rand() * 3);
      for (let f = 0; f < flips; f++) bytes[10 + Math.floor(rand() * (bytes.length - 10))] = Math.floor(rand() * 256);
      try {
        codec.decode(kind, bytes);
        decoded++;
      } catch (err) {
        expect(err).toBeInstanceOf(CodecError);
      }
    }
    expect(decoded).toBeGreaterThan(0); // some flips land in float data and still decode
  });
});

describe('AvroCodec.encode validates values and names the field', () => {
  const invalid = (kind: RecordKind, value: unknown): CodecError => codecError(() => codec.encode(kind, value as never));

  it.each([
    ['ModelUpdate', { round: 1.5 }, 'round'],
    ['ModelUpdate', { round: 2 ** 60 }, 'round'],
    ['ModelUpdate', { nodeId: undefined }, 'nodeId'],
    ['ModelUpdate', { metrics: { loss: 'low' } }, 'metrics.loss'],
    ['ModelUpdate', { nodeID: 'typo' }, 'nodeID'],
    ['ModelVersion', { contributors: [{ updateId: 'u', nodeId: 'n', numExamples: 1, weight: '1' }] }, 'contributors[0].weight'],
    ['RoundControl', { kind: 'PAUSE' }, 'kind'],
    ['RoundControl', { selectedNodes: ['a', 7] }, 'selectedNodes[1]'],
    ['TelemetryEvent', { round: 'three' }, 'round'],
    ['AuditEvent', { details: { 'weird key': 3 } }, 'details["weird key"]'],
    ['AuditEvent', { reason: 42 }, 'reason'],
  ] as const)('%s with %j fails at %s', (kind, patch, field) => {
    const err = invalid(kind, { ...samples()[kind], ...patch });
    expect(err.code).toBe('CODEC_INVALID');
    expect(err.details.field).toBe(field);
    expect(err.message).toContain(field);
  });

  it('names nested tensor fields', () => {
    const value = samples().ModelUpdate;
    value.tensors[1] = { ...(value.tensors[1] as (typeof value.tensors)[number]), dtype: 'FLOAT64' as never };
    const err = invalid('ModelUpdate', value);
    expect(err.details.field).toBe('tensors[1].dtype');
    expect(err.message).toMatch(/one of FLOAT32\|FLOAT16\|INT8/);
  });

  it('lists several problems at once', () => {
    const err = invalid('ModelUpdate', { ...samples().ModelUpdate, round: 'x', baseVersion: null });
    expect((err.details.problems as { field: string }[]).map((p) => p.field)).toEqual(['round', 'baseVersion']);
  });

  it('unknown kind: CODEC_INVALID', () => {
    expect(invalid('Nope' as RecordKind, {}).message).toMatch(/unknown record kind Nope/);
  });
});

describe('schema evolution: ModelVersion v0 (history) read with the current schema', () => {
  const { strategyState: _st, privacy: _p, ...v0Value } = samples().ModelVersion;
  const v0VersionBytes = (value: Record<string, unknown>): Buffer => {
    const v0 = readSchema('history/ModelVersion.v0.avsc');
    const type = avsc.Type.forSchema(v0 as avsc.Schema, { wrapUnions: false, registry: {} });
    return Buffer.concat([Buffer.from([0xc3, 0x01]), fingerprintToBytes(schemaFingerprint(v0)), type.toBuffer(value)]);
  };

  it('resolves v0 bytes into the current shape, with strategyState null', () => {
    const back = codec.decode('ModelVersion', v0VersionBytes(v0Value));
    expect(back).toEqual({ ...v0Value, strategyState: null, privacy: null });
    expect(codec.decodeAny(v0VersionBytes(v0Value))).toMatchObject({ kind: 'ModelVersion', writer: 'v0' });
  });

  it('the current schema carries a strategy state as bytes, and writes null when it is left out', () => {
    const state = Buffer.from('{"rounds":3}');
    expect(codec.decode('ModelVersion', codec.encode('ModelVersion', { ...v0Value, strategyState: state })).strategyState?.equals(state)).toBe(true);
    expect(codec.decode('ModelVersion', codec.encode('ModelVersion', v0Value)).strategyState).toBeNull();
  });
});

describe('schema evolution: ModelVersion v1 (history, before `privacy`) read with the current schema', () => {
  const { privacy: _p, ...v1Value } = samples().ModelVersion;
  const v1Bytes = (value: Record<string, unknown>): Buffer => {
    const v1 = readSchema('history/ModelVersion.v1.avsc');
    const type = avsc.Type.forSchema(v1 as avsc.Schema, { wrapUnions: false, registry: {} });
    return Buffer.concat([Buffer.from([0xc3, 0x01]), fingerprintToBytes(schemaFingerprint(v1)), type.toBuffer(value)]);
  };

  it('resolves v1 bytes into the current shape, with privacy null and the strategy state kept', () => {
    const value = { ...v1Value, strategyState: Buffer.from('{"steps":2}') };
    const back = codec.decode('ModelVersion', v1Bytes(value));
    expect(back).toEqual({ ...value, privacy: null });
    expect(codec.decodeAny(v1Bytes(value))).toMatchObject({ kind: 'ModelVersion', writer: 'v1' });
  });

  it('the current schema carries a privacy guarantee, and writes null when it is left out', () => {
    const privacy = { epsilon: 1.25, delta: 1e-5, noiseMultiplier: 0.8, samplingRate: 0.1, steps: 7, clippingNorm: 0.5, mechanism: 'central-fixed' };
    expect(codec.decode('ModelVersion', codec.encode('ModelVersion', { ...v1Value, privacy })).privacy).toEqual(privacy);
    expect(codec.decode('ModelVersion', codec.encode('ModelVersion', v1Value)).privacy).toBeNull();
  });
});

describe('schema evolution: AuditEvent v0 (history) read with the current schema', () => {
  const v0AuditBytes = (value: Record<string, unknown>): Buffer => {
    const v0 = readSchema('history/AuditEvent.v0.avsc');
    const type = avsc.Type.forSchema(v0 as avsc.Schema, { wrapUnions: false, registry: {} });
    return Buffer.concat([Buffer.from([0xc3, 0x01]), fingerprintToBytes(schemaFingerprint(v0)), type.toBuffer(value)]);
  };

  it('resolves every v0 action unchanged, and the current schema adds PIPELINE_CONTINUED', () => {
    const sample = samples().AuditEvent;
    for (const action of AUDIT_ACTIONS.filter((a) => a !== 'PIPELINE_CONTINUED')) {
      const value = { ...sample, action };
      expect(codec.decode('AuditEvent', v0AuditBytes(value))).toEqual(value);
      expect(codec.decodeAny(v0AuditBytes(value))).toMatchObject({ kind: 'AuditEvent', writer: 'v0' });
    }
    const continued = { ...sample, action: 'PIPELINE_CONTINUED' as const };
    expect(codec.decode('AuditEvent', codec.encode('AuditEvent', continued))).toEqual(continued);
    // The v0 schema has no such symbol: written with it, the record cannot be encoded (a v0 reader would refuse it).
    const v0 = avsc.Type.forSchema(readSchema('history/AuditEvent.v0.avsc') as avsc.Schema, { wrapUnions: false, registry: {} });
    expect(v0.isValid(continued)).toBe(false);
  });
});

describe('schema evolution: ModelUpdate v0 (history) read with the current schema', () => {
  const { sdkVersion: _s, backend: _b, ...v0Value } = samples().ModelUpdate;

  it('resolves v0 bytes into the current shape, filling the new fields with their defaults', () => {
    const back = codec.decode('ModelUpdate', v0Bytes(v0Value));
    expect(back).toEqual({ ...v0Value, sdkVersion: 'unknown', backend: 'unknown' });
    expect(codec.decodeAny(v0Bytes(v0Value))).toMatchObject({ kind: 'ModelUpdate', writer: 'v0' });
  });

  it('decodes the golden v0 bytes in test/fixtures/avro/ModelUpdate.v0.hex', () => {
    const hex = readFileSync(new URL('../fixtures/avro/ModelUpdate.v0.hex', import.meta.url), 'utf8').replace(/\s+/g, '');
    const bytes = Buffer.from(hex, 'hex');
    expect(bytes.equals(v0Bytes(v0Value))).toBe(true);
    expect(codec.decode('ModelUpdate', bytes)).toEqual({ ...v0Value, sdkVersion: 'unknown', backend: 'unknown' });
  });

  it('truncated v0 bytes still give CodecErrors at every cut', () => {
    const bytes = v0Bytes(v0Value);
    for (let cut = 0; cut < bytes.length; cut++) expect(codecError(() => codec.decode('ModelUpdate', bytes.subarray(0, cut))).code).toBe('CODEC_TRUNCATED');
  });

  it('every history schema resolves into its current schema with avsc (the STYLE.md rule)', () => {
    const historyDir = new URL('history/', schemaDir);
    const files = readdirSync(historyDir).filter((f) => f.endsWith('.avsc'));
    expect(files.length).toBeGreaterThan(0);
    for (const file of files) {
      const old = avsc.Type.forSchema(readSchema(`history/${file}`) as avsc.Schema, { wrapUnions: false, registry: {} });
      const kind = file.split('.')[0] as string;
      const current = avsc.Type.forSchema(readSchema(`${kind}.avsc`) as avsc.Schema, { wrapUnions: false, registry: {} });
      expect(() => current.createResolver(old), file).not.toThrow();
    }
  });

  it('a codec without the history does not know v0: CODEC_UNKNOWN_FINGERPRINT', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedstream-avro-'));
    for (const kind of RECORD_KINDS) writeFileSync(join(dir, `${kind}.avsc`), JSON.stringify(readSchema(`${kind}.avsc`)));
    const bare = AvroCodec.fromDirectory(dir);
    expect(codecError(() => bare.decode('ModelUpdate', v0Bytes(v0Value))).code).toBe('CODEC_UNKNOWN_FINGERPRINT');
  });

  it('an incompatible history schema is refused when the codec loads, naming the file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedstream-avro-'));
    for (const kind of RECORD_KINDS) writeFileSync(join(dir, `${kind}.avsc`), JSON.stringify(readSchema(`${kind}.avsc`)));
    mkdirSync(join(dir, 'history'));
    const bad = readSchema(`RoundControl.avsc`) as { fields: { name: string; type: unknown }[] };
    bad.fields = bad.fields.filter((f) => f.name !== 'minUpdates'); // the current schema has no default for it
    writeFileSync(join(dir, 'history', 'RoundControl.v0.avsc'), JSON.stringify(bad));
    const err = codecError(() => AvroCodec.fromDirectory(dir));
    expect(err.code).toBe('CODEC_INVALID');
    expect(err.message).toContain('history/RoundControl.v0.avsc');
  });
});

describe('the schema files', () => {
  const current = RECORD_KINDS.map((kind) => [kind, readSchema(`${kind}.avsc`)] as const);

  it.each(current)('%s: namespace io.fedstream, and every record, enum and field has a doc', (kind, schema) => {
    expect(schema.namespace).toBe('io.fedstream');
    expect(schema.name).toBe(kind);
    const undocumented: string[] = [];
    const visit = (node: unknown, path: string): void => {
      if (Array.isArray(node)) node.forEach((n, i) => visit(n, `${path}|${i}`));
      if (!node || typeof node !== 'object') return;
      const n = node as Record<string, unknown>;
      if ((n.type === 'record' || n.type === 'enum') && !(typeof n.doc === 'string' && n.doc.length > 10)) undocumented.push(`${path} (${String(n.name)})`);
      if (Array.isArray(n.fields)) {
        for (const f of n.fields as Record<string, unknown>[]) {
          if (!(typeof f.doc === 'string' && f.doc.length > 10)) undocumented.push(`${path}.${String(f.name)}`);
          visit(f.type, `${path}.${String(f.name)}`);
        }
      }
      visit(n.items, `${path}[]`);
      visit(n.values, `${path}{}`);
    };
    visit(schema, kind);
    expect(undocumented).toEqual([]);
  });

  it.each(current)('%s parses on its own (no shared registry)', (_kind, schema) => {
    expect(() => avsc.Type.forSchema(schema as avsc.Schema, { registry: {} })).not.toThrow();
  });

  it('TensorRecord is defined identically in ModelUpdate and ModelVersion', () => {
    const tensorItems = (schema: Record<string, unknown>): unknown =>
      ((schema.fields as { name: string; type: { items: unknown } }[]).find((f) => f.name === 'tensors') as { type: { items: unknown } }).type.items;
    const a = tensorItems(readSchema('ModelUpdate.avsc'));
    const b = tensorItems(readSchema('ModelVersion.avsc'));
    expect(parsingCanonicalForm(a)).toBe(parsingCanonicalForm(b));
    expect(a).toEqual(b); // docs too
  });

  it.each(current)('%s: the TypeScript record matches the schema\'s fields', (kind, schema) => {
    const fields = (schema.fields as { name: string }[]).map((f) => f.name);
    expect(Object.keys(samples()[kind])).toEqual(fields);
  });
});

describe('loading', () => {
  it('finds the repository root from any directory below it', () => {
    const root = findRepoRoot();
    expect(readdirSync(join(root, 'schemas', 'avro'))).toContain('ModelUpdate.avsc');
    expect(findRepoRoot(join(root, 'src', 'codec'))).toBe(root);
    expect(codecError(() => findRepoRoot(tmpdir())).code).toBe('CODEC_INVALID');
  });

  it('refuses a directory missing a kind', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedstream-avro-'));
    writeFileSync(join(dir, 'ModelUpdate.avsc'), JSON.stringify(readSchema('ModelUpdate.avsc')));
    expect(codecError(() => AvroCodec.fromDirectory(dir)).message).toMatch(/no current schema for ModelVersion, RoundControl/);
  });
});

describe('docs/wire-format.md', () => {
  const doc = readFileSync(new URL('../../docs/wire-format.md', import.meta.url), 'utf8');

  it('lists every writer schema fingerprint the codec knows, and no other', () => {
    const rows = [...doc.matchAll(/^\|\s*(\w+)\s*\|\s*(current|v\d+)\s*\|\s*`([0-9a-f]{16})`\s*\|\s*`([0-9a-f ]{23})`\s*\|/gm)].map((m) => ({
      kind: m[1],
      label: m[2],
      hex: m[3],
      wire: m[4],
    }));
    const known = codec.writerSchemas().map((w) => ({
      kind: w.kind,
      label: w.label,
      hex: w.fingerprintHex,
      wire: fingerprintToBytes(w.fingerprint).toString('hex').replace(/(..)(?!$)/g, '$1 '),
    }));
    expect(rows).toEqual(known);
  });

  it('shows the exact bytes of its TelemetryEvent example', () => {
    const block = /### Example[\s\S]*?```\n([\s\S]*?)```/.exec(doc)?.[1] ?? '';
    const hex = block
      .split('\n')
      .map((line) => /^((?:[0-9a-f]{2} ?)+)/.exec(line.replace(/ {2,}/g, ' '))?.[1] ?? '')
      .join('')
      .replace(/ /g, '');
    const value = { tenant: 'a', pipeline: 'b', nodeId: 'c', kind: 'HEARTBEAT', round: null, eventTime: 0, metrics: {}, labels: {}, message: null } as const;
    expect(hex).toBe(codec.encode('TelemetryEvent', value).toString('hex'));
  });

  it('names every chunk header', () => {
    for (const name of Object.values(CHUNK_HEADERS)) expect(doc).toContain(`\`${name}\``);
  });
});

describe('AvroCodec.decodeView: tensor bytes as views into the message', () => {
  it('decodes every kind to what decode gives, the bytes fields sharing the message’s memory', () => {
    for (const kind of RECORD_KINDS) {
      const bytes = codec.encode(kind, samples()[kind]);
      expect(codec.decodeView(kind, bytes)).toEqual(codec.decode(kind, bytes));
    }
    const bytes = codec.encode('ModelUpdate', samples().ModelUpdate);
    const view = codec.decodeView('ModelUpdate', bytes).tensors[0]!.data;
    const copy = codec.decode('ModelUpdate', bytes).tensors[0]!.data;
    expect(view.length).toBeGreaterThan(0);
    expect(view.buffer).toBe(bytes.buffer);
    expect(bytes.subarray(view.byteOffset - bytes.byteOffset, view.byteOffset - bytes.byteOffset + view.length).equals(view)).toBe(true);
    expect(copy.buffer).not.toBe(bytes.buffer);
  });

  it('rejects cut and corrupt messages with the same CodecErrors as decode', () => {
    const good = codec.encode('ModelUpdate', samples().ModelUpdate);
    for (let cut = 0; cut < good.length; cut += 7) {
      const a = codecError(() => codec.decode('ModelUpdate', good.subarray(0, cut)));
      const b = codecError(() => codec.decodeView('ModelUpdate', good.subarray(0, cut)));
      expect([b.code, b.message], `cut at ${cut}`).toEqual([a.code, a.message]);
    }
    expect(codecError(() => codec.decodeView('RoundControl', good)).message).toMatch(/expected a RoundControl message, got a ModelUpdate/);
  });

  it('a message written with an older schema is resolved (and copied) as decode does', () => {
    const { sdkVersion: _s, backend: _b, ...v0Value } = samples().ModelUpdate;
    const bytes = v0Bytes(v0Value);
    expect(codec.decodeView('ModelUpdate', bytes)).toEqual(codec.decode('ModelUpdate', bytes));
  });
});
