import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CodecError } from '../../src/common/errors.ts';
import {
  allFinite,
  assertWeightsSha256,
  countParameters,
  defaultCodec,
  findNonFinite,
  float16BitsToFloat32,
  float32ToFloat16Bits,
  l2Norm,
  packTensors,
  unpackTensors,
  weightsSha256,
  type TensorRecord,
  type Weights,
} from '../../src/codec/index.ts';
import { samples } from '../fixtures/avro/samples.ts';

function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function randomWeights(seed = 1): Weights {
  const rand = prng(seed);
  const make = (name: string, shape: number[], spread: number): Weights[number] => {
    const n = shape.reduce((a, b) => a * b, 1);
    return { name, shape, values: Float32Array.from({ length: n }, () => (rand() * 2 - 1) * spread) };
  };
  return [make('dense/kernel', [16, 8], 0.5), make('dense/bias', [8], 0.01), make('scale', [], 3), make('empty', [0, 4], 1)];
}

function codecError(fn: () => unknown): CodecError {
  try {
    fn();
  } catch (err) {
    if (err instanceof CodecError) return err;
    throw err;
  }
  throw new Error('expected a CodecError');
}

describe('packTensors / unpackTensors', () => {
  it('float32 round-trips bit for bit, little-endian', () => {
    const weights = randomWeights();
    weights[0]?.values.set([-0, Infinity, NaN, 1e-45], 0);
    const records = packTensors(weights);
    expect(records.map((r) => [r.dtype, r.scale, r.data.length])).toEqual([
      ['FLOAT32', 1, 512],
      ['FLOAT32', 1, 32],
      ['FLOAT32', 1, 4],
      ['FLOAT32', 1, 0],
    ]);
    expect(records[2]?.data.readFloatLE(0)).toBe(weights[2]?.values[0]);
    const back = unpackTensors(records);
    for (const [i, t] of back.entries()) {
      const original = weights[i] as Weights[number];
      expect(t.name).toBe(original.name);
      expect(t.shape).toEqual(original.shape);
      expect(Buffer.from(t.values.buffer).equals(Buffer.from(original.values.buffer))).toBe(true);
    }
  });

  it('float16 keeps the relative error within 2^-11 and specials intact', () => {
    const weights = randomWeights(2);
    const back = unpackTensors(packTensors(weights, { dtype: 'float16' }));
    for (const [i, t] of back.entries()) {
      const original = (weights[i] as Weights[number]).values;
      expect(packTensors(weights, { dtype: 'float16' })[i]?.data.length).toBe(original.length * 2);
      for (let k = 0; k < original.length; k++) {
        const x = original[k] as number;
        const err = Math.abs((t.values[k] as number) - x);
        expect(err).toBeLessThanOrEqual(Math.max(Math.abs(x) * 2 ** -11, 2 ** -25));
      }
    }
  });

  it('float16 conversion: rounding to even, subnormals, overflow, NaN, signed zero', () => {
    expect(float32ToFloat16Bits(1)).toBe(0x3c00);
    expect(float32ToFloat16Bits(-2)).toBe(0xc000);
    expect(float32ToFloat16Bits(65504)).toBe(0x7bff);
    expect(float32ToFloat16Bits(65520)).toBe(0x7c00); // rounds up past the largest finite
    expect(float32ToFloat16Bits(1e6)).toBe(0x7c00);
    expect(float32ToFloat16Bits(-Infinity)).toBe(0xfc00);
    expect(float32ToFloat16Bits(-0)).toBe(0x8000);
    expect(float32ToFloat16Bits(2 ** -24)).toBe(0x0001); // smallest subnormal
    expect(float32ToFloat16Bits(2 ** -25)).toBe(0x0000); // tie, to even
    expect(float32ToFloat16Bits(1.5 * 2 ** -25)).toBe(0x0001);
    expect(float32ToFloat16Bits(2 ** -14)).toBe(0x0400); // smallest normal
    expect(float32ToFloat16Bits(1 + 2 ** -11)).toBe(0x3c00); // tie between 1 and 1+2^-10: even
    expect(float32ToFloat16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie: up to even
    expect(Number.isNaN(float16BitsToFloat32(float32ToFloat16Bits(NaN)))).toBe(true);
    expect(Object.is(float16BitsToFloat32(0x8000), -0)).toBe(true);
    expect(float16BitsToFloat32(0x7bff)).toBe(65504);
    expect(float16BitsToFloat32(0x0001)).toBe(2 ** -24);
  });

  it('float16 matches Python\'s struct.pack("<e") bit for bit (test/fixtures/avro/float16-vectors.json)', () => {
    const { cases } = JSON.parse(readFileSync(new URL('../fixtures/avro/float16-vectors.json', import.meta.url), 'utf8')) as { cases: [number, number][] };
    for (const [x, bits] of cases) expect(float32ToFloat16Bits(x), String(x)).toBe(bits);
  });

  it('float16: every half value survives half → float32 → half', () => {
    for (let h = 0; h < 0x10000; h++) {
      const f = float16BitsToFloat32(h);
      if (Number.isNaN(f)) continue;
      expect(float32ToFloat16Bits(f)).toBe(h);
    }
  });

  it('int8 uses a symmetric per-tensor scale and errs at most scale / 2', () => {
    const weights = randomWeights(3);
    const records = packTensors(weights, { dtype: 'int8' });
    const back = unpackTensors(records);
    for (const [i, r] of records.entries()) {
      const original = (weights[i] as Weights[number]).values;
      expect(r.dtype).toBe('INT8');
      expect(r.data.length).toBe(original.length);
      const maxAbs = original.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      expect(r.scale).toBe(maxAbs === 0 ? 1 : Math.fround(maxAbs / 127));
      for (let k = 0; k < original.length; k++) {
        expect(Math.abs(r.data.readInt8(k))).toBeLessThanOrEqual(127);
        expect(Math.abs((back[i]?.values[k] as number) - (original[k] as number))).toBeLessThanOrEqual(r.scale / 2 + 1e-7);
      }
    }
    // The extreme value maps to ±127 exactly.
    const w: Weights = [{ name: 'w', shape: [3], values: Float32Array.from([-2, 0, 1]) }];
    const [rec] = packTensors(w, { dtype: 'int8' });
    expect([...(rec as TensorRecord).data].map((b) => (b << 24) >> 24)).toEqual([-127, 0, 64]);
    const zeros = packTensors([{ name: 'z', shape: [2], values: new Float32Array(2) }], { dtype: 'int8' });
    expect(zeros[0]?.scale).toBe(1);
  });

  it('int8 refuses non-finite values, naming the tensor', () => {
    const err = codecError(() => packTensors([{ name: 'bad', shape: [2], values: Float32Array.from([1, NaN]) }], { dtype: 'int8' }));
    expect(err.code).toBe('CODEC_INVALID');
    expect(err.details).toMatchObject({ tensor: 'bad', field: 'weights[0].values[1]' });
  });

  it('tensors travel through a ModelUpdate for every dtype', () => {
    const codec = defaultCodec();
    for (const dtype of ['float32', 'float16', 'int8'] as const) {
      const weights = randomWeights(4);
      const update = { ...samples().ModelUpdate, tensors: packTensors(weights, { dtype }) };
      const back = unpackTensors(codec.decode('ModelUpdate', codec.encode('ModelUpdate', update)).tensors);
      expect(back).toEqual(unpackTensors(update.tensors));
    }
  });

  it('pack refuses shapes that do not match the values, and bad or repeated names', () => {
    const short = codecError(() => packTensors([{ name: 'k', shape: [2, 3], values: new Float32Array(5) }]));
    expect(short.code).toBe('CODEC_INVALID');
    expect(short.message).toContain('k');
    expect(short.details.tensor).toBe('k');
    expect(codecError(() => packTensors([{ name: 'k', shape: [-1], values: new Float32Array(0) }])).details.field).toBe('weights[0].shape[0]');
    expect(codecError(() => packTensors([{ name: 'k', shape: [1.5], values: new Float32Array(1) }])).code).toBe('CODEC_INVALID');
    const twice = { name: 'k', shape: [1], values: new Float32Array(1) };
    expect(codecError(() => packTensors([twice, twice])).message).toMatch(/duplicate tensor name k/);
    expect(codecError(() => packTensors([{ ...twice, name: '' }])).code).toBe('CODEC_INVALID');
    expect(codecError(() => packTensors([twice], { dtype: 'float64' as never })).details.field).toBe('dtype');
  });

  it('unpack: short data is CODEC_TRUNCATED and long data CODEC_INVALID, naming the tensor and field', () => {
    for (const dtype of ['float32', 'float16', 'int8'] as const) {
      const [rec] = packTensors([{ name: 'layer/w', shape: [4, 2], values: Float32Array.from({ length: 8 }, (_, i) => i) }], { dtype });
      const r = rec as TensorRecord;
      const short = codecError(() => unpackTensors([r, { ...r, name: 'x', data: r.data.subarray(0, r.data.length - 1) }]));
      expect(short.code).toBe('CODEC_TRUNCATED');
      expect(short.details).toMatchObject({ tensor: 'x', field: 'tensors[1].data', expected: r.data.length, actual: r.data.length - 1 });
      expect(short.message).toContain('x');
      const long = codecError(() => unpackTensors([{ ...r, data: Buffer.concat([r.data, Buffer.alloc(1)]) }]));
      expect(long.code).toBe('CODEC_INVALID');
      expect(long.details.tensor).toBe('layer/w');
    }
  });

  it('unpack validates shape, scale, dtype and names', () => {
    const [rec] = packTensors([{ name: 'w', shape: [2], values: Float32Array.from([1, 2]) }]);
    const r = rec as TensorRecord;
    expect(codecError(() => unpackTensors([{ ...r, shape: [-2] }])).details.field).toBe('tensors[0].shape[0]');
    expect(codecError(() => unpackTensors([{ ...r, scale: 2 }])).details.field).toBe('tensors[0].scale');
    expect(codecError(() => unpackTensors([{ ...r, dtype: 'INT8', scale: 0, data: Buffer.alloc(2) }])).details.field).toBe('tensors[0].scale');
    expect(codecError(() => unpackTensors([{ ...r, dtype: 'BF16' as never }])).details.field).toBe('tensors[0].dtype');
    expect(codecError(() => unpackTensors([{ ...r, dtype: 'toString' as never }])).details.field).toBe('tensors[0].dtype');
    expect(codecError(() => unpackTensors([r, r])).details.field).toBe('tensors[1].name');
  });

  it('unpack reads unaligned data (a slice of a larger message buffer)', () => {
    const [rec] = packTensors([{ name: 'w', shape: [3], values: Float32Array.from([1.5, -2.25, 3]) }]);
    const padded = Buffer.concat([Buffer.alloc(1), (rec as TensorRecord).data]);
    const [t] = unpackTensors([{ ...(rec as TensorRecord), data: padded.subarray(1) }]);
    expect([...(t?.values ?? [])]).toEqual([1.5, -2.25, 3]);
  });

  it('unpack writes into the arrays it is given (views at any offset of a larger buffer), every dtype, and allocates where they do not fit', () => {
    const values = Float32Array.from([0.5, -1, 2, 3.25, -0.125]);
    for (const dtype of ['float32', 'float16', 'int8'] as const) {
      const recs = packTensors([{ name: 'w', shape: [5], values }, { name: 'b', shape: [2], values: Float32Array.from([1, 2]) }], { dtype });
      const want = unpackTensors(recs);
      const memory = new ArrayBuffer(64);
      const into = [new Float32Array(memory, 12, 5), new Float32Array(memory, 40, 3)]; // the second is the wrong size
      const got = unpackTensors(recs, into);
      expect(got[0]!.values).toBe(into[0]);
      expect(got[1]!.values).not.toBe(into[1]);
      expect([...into[0]!]).toEqual([...want[0]!.values]);
      expect([...got[1]!.values]).toEqual([...want[1]!.values]);
      expect([...into[1]!]).toEqual([0, 0, 0]);
      expect([...new Float32Array(memory, 0, 3)]).toEqual([0, 0, 0]); // nothing written before the view
    }
  });
});

describe('weightsSha256', () => {
  it('hashes the documented canonical bytes', () => {
    const weights: Weights = [
      { name: 'dense/kernel', shape: [2, 1], values: Float32Array.from([1, -0.5]) },
      { name: 'é', shape: [], values: Float32Array.from([0]) },
    ];
    const u32 = (n: number): Buffer => {
      const b = Buffer.alloc(4);
      b.writeUInt32LE(n);
      return b;
    };
    const f32 = (xs: number[]): Buffer => Buffer.concat(xs.map((x) => {
      const b = Buffer.alloc(4);
      b.writeFloatLE(x);
      return b;
    }));
    const canonical = Buffer.concat([
      u32(12), Buffer.from('dense/kernel'), u32(2), u32(2), u32(1), f32([1, -0.5]),
      u32(2), Buffer.from('é'), u32(0), f32([0]),
    ]);
    expect(weightsSha256(weights)).toBe(createHash('sha256').update(canonical).digest('hex'));
    expect(weightsSha256([])).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  });

  it('is stable (fixed vector) and sensitive to names, shapes, order and values', () => {
    const weights = randomWeights(5);
    expect(weightsSha256(weights)).toBe(weightsSha256(randomWeights(5)));
    expect(weightsSha256([{ name: 'a', shape: [2], values: Float32Array.from([1, 2]) }])).toBe(
      // computed with the Python snippet in docs/wire-format.md
      '92e3fe1e8296e7cffa46cea930da68b7b79660628cd65de70ad302c13cb3a245',
    );
    const variants: Weights[] = [
      [{ ...(weights[0] as Weights[number]), name: 'other' }, ...weights.slice(1)],
      [{ ...(weights[0] as Weights[number]), shape: [8, 16] }, ...weights.slice(1)],
      [weights[1] as Weights[number], weights[0] as Weights[number], ...weights.slice(2)],
      weights.map((t, i) => (i === 1 ? { ...t, values: t.values.map((v, k) => (k === 0 ? v + 1e-6 : v)) } : t)),
    ];
    for (const v of variants) expect(weightsSha256(v)).not.toBe(weightsSha256(weights));
  });

  it('equals the sha of the weights as unpacked from any dtype after dequantization', () => {
    const weights = randomWeights(6);
    const records = packTensors(weights, { dtype: 'int8' });
    const sha = weightsSha256(unpackTensors(records));
    expect(() => assertWeightsSha256(unpackTensors(records), sha.toUpperCase())).not.toThrow();
    const err = codecError(() => assertWeightsSha256(weights, sha));
    expect(err.code).toBe('CODEC_CHECKSUM_MISMATCH');
    expect(err.details).toMatchObject({ expected: sha });
  });

  it('refuses weights whose shapes do not match their values', () => {
    expect(codecError(() => weightsSha256([{ name: 'w', shape: [3], values: new Float32Array(2) }])).code).toBe('CODEC_INVALID');
  });
});

describe('helpers', () => {
  const weights: Weights = [
    { name: 'a', shape: [2], values: Float32Array.from([3, 0]) },
    { name: 'b', shape: [1, 1], values: Float32Array.from([-4]) },
  ];

  it('l2Norm, countParameters', () => {
    expect(l2Norm(weights)).toBe(5);
    expect(l2Norm([])).toBe(0);
    expect(countParameters(weights)).toBe(3);
    expect(countParameters(randomWeights())).toBe(128 + 8 + 1 + 0);
  });

  it('allFinite and findNonFinite name the first bad value', () => {
    expect(allFinite(weights)).toBe(true);
    expect(findNonFinite(weights)).toBeUndefined();
    const bad: Weights = [weights[0] as Weights[number], { name: 'b', shape: [2], values: Float32Array.from([1, -Infinity]) }];
    expect(allFinite(bad)).toBe(false);
    expect(findNonFinite(bad)).toEqual({ tensor: 'b', index: 1, value: -Infinity });
  });
});
