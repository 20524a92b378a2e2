/**
 * The safetensors file format (Hugging Face, https://github.com/huggingface/safetensors, "Format"), for float32
 * weights: what `fedstream model export` writes so that PyTorch, JAX, NumPy or any other framework can read a
 * version. No npm library for it is kept up; the format is small enough to write here:
 *
 *   8 bytes   N, the header's length: unsigned 64-bit little-endian
 *   N bytes   the header: UTF-8 JSON, padded with spaces to a multiple of 8 bytes,
 *             { "__metadata__": { string: string }, "<tensor name>": { "dtype": "F32", "shape": [...],
 *               "data_offsets": [begin, end] }, ... }
 *   rest      the byte buffer: each tensor's values, little-endian, row-major, at [begin, end) of the buffer,
 *             tensors back to back in header order with no gaps (the spec forbids holes and overlaps)
 *
 * Only F32 is written and read (FedStream's weights are float32 in memory, docs/wire-format.md).
 */
import { CodecError } from '../common/index.ts';
import type { Weights } from './types.ts';

/** Largest header a reader of the reference implementation accepts (100 MB). */
const MAX_HEADER_BYTES = 100_000_000;

function littleEndianF32(values: Float32Array): Buffer {
  const out = Buffer.allocUnsafe(values.length * 4);
  for (let i = 0; i < values.length; i++) out.writeFloatLE(values[i]!, i * 4);
  return out;
}

/**
 * Encodes weights as a safetensors file: `tensors` in their order (names must be unique), `metadata` as the
 * header's `__metadata__` (string values only, as the format requires). Returns the whole file.
 */
export function encodeSafetensors(tensors: Weights, metadata: Record<string, string> = {}): Buffer {
  const header: Record<string, unknown> = { __metadata__: metadata };
  const data: Buffer[] = [];
  let at = 0;
  for (const t of tensors) {
    if (t.name === '__metadata__' || t.name in header) throw new CodecError('CODEC_INVALID', `safetensors: tensor name ${t.name} is used twice or reserved`, { details: { tensor: t.name } });
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.values.length) throw new CodecError('CODEC_INVALID', `safetensors: tensor ${t.name} has ${t.values.length} values, its shape [${t.shape.join(', ')}] needs ${count}`, { details: { tensor: t.name } });
    const bytes = littleEndianF32(t.values);
    header[t.name] = { dtype: 'F32', shape: t.shape, data_offsets: [at, at + bytes.length] };
    data.push(bytes);
    at += bytes.length;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  // Padded with spaces so that the byte buffer starts 8-byte aligned (allowed and done by the reference writer).
  const pad = (8 - (json.length % 8)) % 8;
  if (pad > 0) json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const size = Buffer.alloc(8);
  size.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([size, json, ...data]);
}

/** A safetensors file read back: its tensors in header order and its `__metadata__`. */
export interface SafetensorsFile {
  tensors: Weights;
  metadata: Record<string, string>;
}

/**
 * Decodes a safetensors file of F32 tensors. Throws CodecError (CODEC_TRUNCATED, CODEC_INVALID) naming the byte
 * offset or the tensor on a short file, a bad header, another dtype, or offsets that leave holes or overlap.
 */
export function decodeSafetensors(file: Buffer): SafetensorsFile {
  if (file.length < 8) throw new CodecError('CODEC_TRUNCATED', `safetensors: ${file.length} bytes, fewer than the 8-byte header length`, { details: { offset: 0 } });
  const n = file.readBigUInt64LE(0);
  if (n > BigInt(Math.min(MAX_HEADER_BYTES, file.length - 8))) throw new CodecError('CODEC_TRUNCATED', `safetensors: header length ${n} exceeds the file (${file.length} bytes) or ${MAX_HEADER_BYTES}`, { details: { offset: 0 } });
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(file.subarray(8, 8 + Number(n)).toString('utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new CodecError('CODEC_INVALID', `safetensors: the header is not JSON: ${(err as Error).message}`, { cause: err, details: { offset: 8 } });
  }
  const base = 8 + Number(n);
  const { __metadata__: meta = {}, ...entries } = header;
  const tensors: Weights = [];
  const spans: [number, number, string][] = [];
  for (const [name, raw] of Object.entries(entries)) {
    const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (e.dtype !== 'F32') throw new CodecError('CODEC_INVALID', `safetensors: tensor ${name} has dtype ${String(e.dtype)}; only F32 is read`, { details: { tensor: name } });
    const shape = e.shape as number[];
    const [begin, end] = e.data_offsets as [number, number];
    const count = shape.reduce((a, b) => a * b, 1);
    if (!Number.isSafeInteger(begin) || !Number.isSafeInteger(end) || end - begin !== count * 4 || base + end > file.length) {
      throw new CodecError('CODEC_INVALID', `safetensors: tensor ${name} has data_offsets [${begin}, ${end}] that do not hold ${count} float32 values within the file`, { details: { tensor: name } });
    }
    const values = new Float32Array(count);
    for (let i = 0; i < count; i++) values[i] = file.readFloatLE(base + begin + 4 * i);
    tensors.push({ name, shape, values });
    spans.push([begin, end, name]);
  }
  spans.sort((a, b) => a[0] - b[0]);
  let at = 0;
  for (const [begin, end, name] of spans) {
    if (begin !== at) throw new CodecError('CODEC_INVALID', `safetensors: tensor ${name} starts at ${begin}, expected ${at} (holes and overlaps are not allowed)`, { details: { tensor: name } });
    at = end;
  }
  if (base + at !== file.length) throw new CodecError('CODEC_INVALID', `safetensors: ${file.length - base - at} bytes after the last tensor`, { details: { offset: base + at } });
  return { tensors, metadata: meta as Record<string, string> };
}
