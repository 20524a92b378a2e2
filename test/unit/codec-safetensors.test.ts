import { describe, expect, it } from 'vitest';
import { decodeSafetensors, encodeSafetensors } from '../../src/codec/index.ts';
import { isFedStreamError } from '../../src/common/index.ts';

const weights = [
  { name: 'l0_dense/kernel', shape: [2, 3], values: new Float32Array([1, -2, 3.5, 0, 1e-8, -0]) },
  { name: 'l0_dense/bias', shape: [3], values: new Float32Array([0.25, 3.4e38, -1]) },
];

describe('safetensors (https://github.com/huggingface/safetensors, "Format")', () => {
  it('lays out the 8-byte LE header length, a JSON header padded to 8 bytes, and the tensors back to back', () => {
    const file = encodeSafetensors(weights, { 'fedstream.version': '3' });
    const n = Number(file.readBigUInt64LE(0));
    expect(n % 8).toBe(0);
    const header = JSON.parse(file.subarray(8, 8 + n).toString('utf8'));
    expect(header).toEqual({
      __metadata__: { 'fedstream.version': '3' },
      'l0_dense/kernel': { dtype: 'F32', shape: [2, 3], data_offsets: [0, 24] },
      'l0_dense/bias': { dtype: 'F32', shape: [3], data_offsets: [24, 36] },
    });
    expect(file.length).toBe(8 + n + 36);
    expect(file.readFloatLE(8 + n + 8)).toBe(3.5);
    expect(file.readFloatLE(8 + n + 24)).toBe(0.25);
  });

  it('reads back what it writes, bit for bit', () => {
    const back = decodeSafetensors(encodeSafetensors(weights, { a: 'b' }));
    expect(back.metadata).toEqual({ a: 'b' });
    expect(back.tensors.map((t) => t.name)).toEqual(weights.map((w) => w.name));
    back.tensors.forEach((t, i) => {
      expect(t.shape).toEqual(weights[i]!.shape);
      expect(Buffer.from(t.values.buffer)).toEqual(Buffer.from(weights[i]!.values.buffer));
    });
  });

  it('refuses a file with a hole between tensors, naming the tensor', () => {
    const file = encodeSafetensors(weights);
    const n = Number(file.readBigUInt64LE(0));
    const header = JSON.parse(file.subarray(8, 8 + n).toString('utf8'));
    header['l0_dense/bias'].data_offsets = [28, 40];
    const json = Buffer.from(JSON.stringify(header));
    const size = Buffer.alloc(8);
    size.writeBigUInt64LE(BigInt(json.length));
    const bad = Buffer.concat([size, json, file.subarray(8 + n), Buffer.alloc(4)]);
    const err = (() => { try { decodeSafetensors(bad); } catch (e) { return e; } return undefined; })();
    expect(isFedStreamError(err) && err.code).toBe('CODEC_INVALID');
    expect(String((err as Error).message)).toMatch(/l0_dense\/bias starts at 28, expected 24/);
  });

  it('refuses a value count that does not match the shape, and a truncated file', () => {
    expect(() => encodeSafetensors([{ name: 'x', shape: [2, 2], values: new Float32Array(3) }])).toThrow(/x has 3 values, its shape \[2, 2\] needs 4/);
    expect(() => decodeSafetensors(Buffer.alloc(4))).toThrow(/fewer than the 8-byte header length/);
  });
});
