/**
 * Weights ⇄ TensorRecord (the Avro tensor layout), the canonical weights hash, and small checks on weights.
 * Byte layouts are specified in docs/wire-format.md; everything is little-endian whatever the host.
 */
import { copyBytes } from '../common/index.ts';
import { createHash } from 'node:crypto';
import { CodecError } from '../common/index.ts';
import type { TensorRecord, TensorDtypeSymbol } from './records.ts';
import type { NamedTensor, Weights } from './types.ts';

export type TensorDtype = 'float32' | 'float16' | 'int8';

export interface PackOptions {
  /** Element encoding on the wire (default float32). float16 and int8 are lossy; see docs/wire-format.md. */
  dtype?: TensorDtype;
}

const SYMBOL: Record<TensorDtype, TensorDtypeSymbol> = { float32: 'FLOAT32', float16: 'FLOAT16', int8: 'INT8' };
const BYTES_PER_ELEMENT: Record<TensorDtypeSymbol, number> = { FLOAT32: 4, FLOAT16: 2, INT8: 1 };
const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

// ---------------------------------------------------------------------------------------------------------
// IEEE 754 binary16, by hand: Node 20 has neither Float16Array nor Math.f16round.

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** float32 → binary16 bits, rounding to nearest, ties to even; overflow gives ±Infinity, NaN stays NaN. */
export function float32ToFloat16Bits(value: number): number {
  scratchF32[0] = value;
  const x = scratchU32[0] as number;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal binary16 (or zero): shift the 24-bit significand, implicit bit included, into place.
    if (e < -10) return sign;
    const full = mant | 0x800000;
    const shift = 14 - e;
    let half = full >>> shift;
    const rem = full & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && (half & 1) === 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // A carry out of the significand correctly bumps the exponent (up to Infinity).
  if (rem > 0x1000 || (rem === 0x1000 && (half & 1) === 1)) half++;
  return sign | half;
}

let f16Table: Float32Array | undefined;

/** binary16 bits → the (exactly representable) float32 value. */
export function float16BitsToFloat32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >>> 10) & 0x1f;
  const mant = bits & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

function float16Table(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = float16BitsToFloat32(h);
  }
  return f16Table;
}

// ---------------------------------------------------------------------------------------------------------

function elementCount(shape: readonly number[], where: () => string, tensor: string): number {
  let n = 1;
  for (const [i, d] of shape.entries()) {
    if (!Number.isInteger(d) || d < 0 || d > 0x7fffffff) {
      throw new CodecError('CODEC_INVALID', `${where()}: tensor ${tensor} has dimension ${i} = ${String(d)}, expected an integer >= 0`, {
        details: { tensor, field: `${where()}.shape[${i}]` },
      });
    }
    n *= d;
  }
  if (!Number.isSafeInteger(n)) {
    throw new CodecError('CODEC_INVALID', `${where()}: tensor ${tensor} shape [${shape.join(', ')}] has too many elements`, { details: { tensor, field: `${where()}.shape` } });
  }
  return n;
}

function checkTensor(t: NamedTensor, i: number, names: Set<string>): number {
  const where = (): string => `weights[${i}]`;
  if (typeof t.name !== 'string' || t.name === '') {
    throw new CodecError('CODEC_INVALID', `weights[${i}]: tensor name must be a non-empty string`, { details: { field: `weights[${i}].name` } });
  }
  if (names.has(t.name)) throw new CodecError('CODEC_INVALID', `weights[${i}]: duplicate tensor name ${t.name}`, { details: { tensor: t.name, field: `weights[${i}].name` } });
  names.add(t.name);
  const n = elementCount(t.shape, where, t.name);
  if (!(t.values instanceof Float32Array) || t.values.length !== n) {
    const got = t.values instanceof Float32Array ? `${t.values.length} values` : 'no Float32Array';
    throw new CodecError('CODEC_INVALID', `weights[${i}]: tensor ${t.name} of shape [${t.shape.join(', ')}] needs ${n} float32 values, got ${got}`, {
      details: { tensor: t.name, field: `weights[${i}].values`, expected: n },
    });
  }
  return n;
}

function float32Bytes(values: Float32Array): Buffer {
  const out = Buffer.allocUnsafe(values.length * 4);
  if (HOST_LITTLE_ENDIAN) {
    out.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
  } else {
    for (let i = 0; i < values.length; i++) out.writeFloatLE(values[i] as number, i * 4);
  }
  return out;
}

function packOne(t: NamedTensor, dtype: TensorDtype, i: number): TensorRecord {
  const v = t.values;
  const base = { name: t.name, shape: [...t.shape], dtype: SYMBOL[dtype] };
  if (dtype === 'float32') return { ...base, scale: 1, data: float32Bytes(v) };
  if (dtype === 'float16') {
    const bits = new Uint16Array(v.length);
    for (let k = 0; k < v.length; k++) bits[k] = float32ToFloat16Bits(v[k] as number);
    if (!HOST_LITTLE_ENDIAN) for (let k = 0; k < bits.length; k++) bits[k] = (((bits[k] as number) & 0xff) << 8) | ((bits[k] as number) >>> 8);
    return { ...base, scale: 1, data: Buffer.from(bits.buffer, 0, bits.byteLength) };
  }
  let maxAbs = 0;
  for (let k = 0; k < v.length; k++) {
    const x = v[k] as number;
    if (!Number.isFinite(x)) {
      throw new CodecError('CODEC_INVALID', `weights[${i}]: tensor ${t.name} element ${k} is ${x}; int8 quantization needs finite values`, {
        details: { tensor: t.name, field: `weights[${i}].values[${k}]` },
      });
    }
    maxAbs = Math.max(maxAbs, Math.abs(x));
  }
  // Symmetric per-tensor scale, itself a float32 because it travels as an Avro float.
  const scale = maxAbs === 0 ? 1 : Math.fround(maxAbs / 127);
  const q = new Int8Array(v.length);
  for (let k = 0; k < v.length; k++) {
    const x = (v[k] as number) / scale;
    // Round half away from zero, clamp to the symmetric range -127..127.
    q[k] = Math.max(-127, Math.min(127, x < 0 ? -Math.round(-x) : Math.round(x)));
  }
  return { ...base, scale, data: Buffer.from(q.buffer, 0, q.byteLength) };
}

/**
 * Packs weights into TensorRecords, in order. Throws CODEC_INVALID (naming the tensor) when a shape does not
 * match the number of values, a name is empty or repeated, or an int8 tensor holds a non-finite value.
 */
export function packTensors(weights: Weights, options: PackOptions = {}): TensorRecord[] {
  const dtype = options.dtype ?? 'float32';
  if (!Object.hasOwn(SYMBOL, dtype)) {
    throw new CodecError('CODEC_INVALID', `unknown tensor dtype ${String(dtype)}; expected float32, float16 or int8`, { details: { field: 'dtype' } });
  }
  const names = new Set<string>();
  return weights.map((t, i) => {
    checkTensor(t, i, names);
    return packOne(t, dtype, i);
  });
}

/**
 * Unpacks TensorRecords into float32 weights (dequantizing float16 and int8). Validates each record: shape,
 * dtype, scale and data length (CODEC_TRUNCATED when data is short, CODEC_INVALID otherwise, both naming the
 * tensor and the field `tensors[i]...`). `into[i]`, when given and of the tensor's size, receives tensor i's values
 * instead of a new array (the aggregator decodes into its fold kernel's memory that way; see kernels/).
 */
export function unpackTensors(records: readonly TensorRecord[], into?: readonly Float32Array[]): Weights {
  const names = new Set<string>();
  return records.map((r, i) => {
    const field = `tensors[${i}]`;
    const name = typeof r.name === 'string' ? r.name : String(r.name);
    if (name === '' || names.has(name)) {
      throw new CodecError('CODEC_INVALID', `${field}: tensor name ${JSON.stringify(name)} is empty or repeated`, { details: { tensor: name, field: `${field}.name` } });
    }
    names.add(name);
    if (!Array.isArray(r.shape)) throw new CodecError('CODEC_INVALID', `${field}: tensor ${name} has no shape`, { details: { tensor: name, field: `${field}.shape` } });
    const n = elementCount(r.shape, () => field, name);
    if (!Object.hasOwn(BYTES_PER_ELEMENT, r.dtype)) {
      throw new CodecError('CODEC_INVALID', `${field}: tensor ${name} has unknown dtype ${String(r.dtype)}`, { details: { tensor: name, field: `${field}.dtype` } });
    }
    const scaleOk = r.dtype === 'INT8' ? Number.isFinite(r.scale) && r.scale > 0 : r.scale === 1;
    if (!scaleOk) {
      const rule = r.dtype === 'INT8' ? 'a finite number > 0' : '1';
      throw new CodecError('CODEC_INVALID', `${field}: tensor ${name} (${r.dtype}) has scale ${r.scale}, expected ${rule}`, { details: { tensor: name, field: `${field}.scale` } });
    }
    const data = r.data;
    const expected = n * BYTES_PER_ELEMENT[r.dtype];
    if (!Buffer.isBuffer(data) || data.length !== expected) {
      const actual = Buffer.isBuffer(data) ? data.length : 0;
      const code = actual < expected ? 'CODEC_TRUNCATED' : 'CODEC_INVALID';
      throw new CodecError(code, `${field}: tensor ${name} of shape [${r.shape.join(', ')}] (${r.dtype}) needs ${expected} data bytes, got ${actual}`, {
        details: { tensor: name, field: `${field}.data`, expected, actual },
      });
    }
    const given = into?.[i];
    const values = given && given.length === n ? given : new Float32Array(n);
    if (r.dtype === 'FLOAT32') {
      if (HOST_LITTLE_ENDIAN) copyBytes(new Uint8Array(values.buffer, values.byteOffset, values.byteLength), data);
      else for (let k = 0; k < n; k++) values[k] = data.readFloatLE(k * 4);
    } else if (r.dtype === 'FLOAT16') {
      const table = float16Table();
      const bits = new Uint16Array(n); // aligned copy: `data` may start at any byte of the message
      new Uint8Array(bits.buffer).set(data);
      if (HOST_LITTLE_ENDIAN) for (let k = 0; k < n; k++) values[k] = table[bits[k] as number] as number;
      else for (let k = 0; k < n; k++) values[k] = table[data.readUInt16LE(k * 2)] as number;
    } else {
      const q = new Int8Array(data.buffer, data.byteOffset, n);
      // int8 × float32 is exact in a double, so storing it rounds once: the same as a float32 multiply.
      for (let k = 0; k < n; k++) values[k] = (q[k] as number) * r.scale;
    }
    return { name, shape: [...r.shape], values };
  });
}

/**
 * SHA-256 (lowercase hex) of the canonical weights bytes — reproduce it in any language as: for each tensor,
 * in order, with no separators and nothing before or after:
 *
 *   u32 LE  byte length of the name in UTF-8
 *   bytes   the name in UTF-8
 *   u32 LE  rank (number of dimensions)
 *   u32 LE  each dimension, in order
 *   f32 LE  each value, row-major: product(dimensions) × 4 bytes, the IEEE 754 bits as they are (−0 ≠ +0)
 *
 * ModelVersion.weightsSha256 is this over `unpackTensors(version.tensors)`, i.e. after dequantization.
 */
export function weightsSha256(weights: Weights): string {
  const hash = createHash('sha256');
  const names = new Set<string>();
  weights.forEach((t, i) => {
    checkTensor(t, i, names);
    const name = Buffer.from(t.name, 'utf8');
    const head = Buffer.allocUnsafe(8 + name.length + 4 * t.shape.length);
    head.writeUInt32LE(name.length, 0);
    name.copy(head, 4);
    let at = 4 + name.length;
    head.writeUInt32LE(t.shape.length, at);
    at += 4;
    for (const d of t.shape) {
      head.writeUInt32LE(d, at);
      at += 4;
    }
    hash.update(head);
    hash.update(HOST_LITTLE_ENDIAN ? new Uint8Array(t.values.buffer, t.values.byteOffset, t.values.byteLength) : float32Bytes(t.values));
  });
  return hash.digest('hex');
}

/** Throws CODEC_CHECKSUM_MISMATCH unless `weightsSha256(weights)` equals `expected` (hex, any case). */
export function assertWeightsSha256(weights: Weights, expected: string): void {
  const actual = weightsSha256(weights);
  if (actual !== expected.toLowerCase()) {
    throw new CodecError('CODEC_CHECKSUM_MISMATCH', `weights sha256 ${actual} does not match the declared ${expected}`, { details: { expected, actual } });
  }
}

/** Euclidean norm over every value of every tensor (accumulated in float64). */
export function l2Norm(weights: Weights): number {
  let sum = 0;
  for (const t of weights) for (let k = 0; k < t.values.length; k++) sum += (t.values[k] as number) ** 2;
  return Math.sqrt(sum);
}

/** The first NaN or ±Infinity, for a rejection reason a person can act on; undefined when all are finite. */
export function findNonFinite(weights: Weights): { tensor: string; index: number; value: number } | undefined {
  for (const t of weights) {
    for (let k = 0; k < t.values.length; k++) {
      const v = t.values[k] as number;
      if (!Number.isFinite(v)) return { tensor: t.name, index: k, value: v };
    }
  }
  return undefined;
}

/** True when no value is NaN or ±Infinity. */
export function allFinite(weights: Weights): boolean {
  return findNonFinite(weights) === undefined;
}

/** Total number of scalar parameters. */
export function countParameters(weights: Weights): number {
  return weights.reduce((n, t) => n + t.values.length, 0);
}
