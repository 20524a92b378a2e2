import { describe, expect, it } from 'vitest';
import { copyBytes } from '../../src/common/bytes.ts';

function pattern(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s >>> 24;
  }
  return out;
}

describe('copyBytes', () => {
  it('copies like TypedArray.set into shared and ordinary memory, at every alignment and across its bounce buffer', () => {
    for (const Buf of [SharedArrayBuffer, ArrayBuffer]) {
      for (const length of [0, 5, 4095, 4096, 70_001, (1 << 18) + 3, 3 * (1 << 18) - 1]) {
        for (const srcShift of [0, 1, 3, 8]) {
          for (const dstShift of [0, 4]) {
            const src = pattern(length + 16, length + srcShift).subarray(srcShift, srcShift + length);
            const want = new Uint8Array(length + 32);
            want.set(src, 8 + dstShift);
            const dst = new Uint8Array(new Buf(length + 32));
            dst.fill(0);
            copyBytes(dst.subarray(8), src, dstShift);
            expect(Buffer.from(dst).equals(Buffer.from(want)), `${Buf.name} length ${length} src +${srcShift} dst +${dstShift}`).toBe(true);
          }
        }
      }
    }
  });
});
