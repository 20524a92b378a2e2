import { describe, expect, it } from 'vitest';
import { WeightedSum, foldScaledScalar, helperCount, helpersReady, kernelModule, startHelpers, KERNEL_BLOCK, KERNEL_MAX_K } from '../../src/aggregator/kernels/index.ts';
import { WeightedMean } from '../../src/aggregator/strategies/fedavg.ts';
import type { Weights } from '../../src/codec/types.ts';

/** Deterministic float32 values with every kind of magnitude, sign and a few special values. */
function values(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const mantissa = (s >>> 8) / 16777216 - 0.5;
    const exp = ((s >>> 3) % 40) - 20;
    out[i] = mantissa * 2 ** exp;
  }
  if (n > 3) {
    out[0] = -0;
    out[1] = 1e-45; // smallest subnormal float32
    out[2] = 3.4e38;
  }
  return out;
}

function scalarReference(sizes: number[], updates: Float32Array[][], scales: number[], start?: Float64Array[]): Float64Array[] {
  const acc = sizes.map((n, t) => (start ? Float64Array.from(start[t]!) : new Float64Array(n)));
  updates.forEach((xs, k) => xs.forEach((x, t) => foldScaledScalar(acc[t]!, x, scales[k]!)));
  return acc;
}

function sameBits(a: Float64Array, b: Float64Array): boolean {
  if (a.length !== b.length) return false;
  const ua = new BigUint64Array(a.buffer, a.byteOffset, a.length);
  const ub = new BigUint64Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) return false;
  return true;
}

describe('fold kernel', () => {
  it('compiles with WebAssembly SIMD on this runtime', () => {
    expect(kernelModule()).not.toBeNull();
    expect(new WeightedSum([8]).kernel).toBe('wasm-simd');
  });

  // Sizes around the SIMD width (4), the staging block and the tail loop; every buffered count 1..MAX_K.
  const sizeSets = [[1], [3], [4], [5], [0, 7], [KERNEL_BLOCK - 1, KERNEL_BLOCK, KERNEL_BLOCK + 1], [3 * KERNEL_BLOCK + 13, 10, 1]];
  for (const sizes of sizeSets) {
    for (const k of [1, 2, 3, KERNEL_MAX_K]) {
      it(`equals the scalar loop bit for bit: sizes [${sizes.join(', ')}], ${k} buffered`, () => {
        const n = 2 * k + 1; // forces a partial last pass
        const updates = Array.from({ length: n }, (_, u) => sizes.map((size, t) => values(size, 1 + u * 31 + t)));
        const scales = Array.from({ length: n }, (_, u) => [1, 3, 0.1, 12345, 1e-3, 7][u % 6]!);
        const sum = new WeightedSum(sizes, { maxBuffered: k });
        expect(sum.k).toBe(k);
        updates.forEach((xs, u) => sum.add(xs, scales[u]!));
        const got = sum.sums();
        const want = scalarReference(sizes, updates, scales);
        sizes.forEach((_, t) => expect(sameBits(got[t]!, want[t]!)).toBe(true));
      });
    }
  }

  it('keeps folding into the same sums after a flush, and propagates NaN and infinities as the loop does', () => {
    const sizes = [9];
    const a = values(9, 5);
    const b = Float32Array.from([NaN, Infinity, -Infinity, 1, 2, 3, 4, 5, 6]);
    const sum = new WeightedSum(sizes, { maxBuffered: 4 });
    sum.add([a], 2);
    const first = Float64Array.from(sum.sums()[0]!);
    expect(sameBits(first, scalarReference(sizes, [[a]], [2])[0]!)).toBe(true);
    sum.add([b], 3);
    sum.add([a], 5);
    expect(sameBits(sum.sums()[0]!, scalarReference(sizes, [[a], [b], [a]], [2, 3, 5])[0]!)).toBe(true);
  });

  it('buffers no more updates than the byte cap allows', () => {
    expect(new WeightedSum([1000], { maxBufferedBytes: 4000 * 3 }).k).toBe(3);
    expect(new WeightedSum([1000], { maxBufferedBytes: 1 }).k).toBe(1);
    expect(new WeightedSum([10]).k).toBe(KERNEL_MAX_K);
  });

  it('refuses updates of the wrong shape instead of reading past them', () => {
    const sum = new WeightedSum([4, 2]);
    expect(() => sum.add([new Float32Array(4)], 1)).toThrow(/2 tensors|expected 2/);
    expect(() => sum.add([new Float32Array(4), new Float32Array(3)], 1)).toThrow(/3 values, expected 2/);
  });

  it('the scalar fallback gives the same bits', () => {
    const sizes = [37, 5];
    const updates = Array.from({ length: 5 }, (_, u) => sizes.map((s, t) => values(s, 100 + u + t)));
    const scales = [1, 2, 3, 4, 5];
    const w = new WeightedSum(sizes);
    const s = new WeightedSum(sizes, { kernel: 'scalar' });
    expect(s.kernel).toBe('scalar');
    updates.forEach((xs, u) => { w.add(xs, scales[u]!); s.add(xs, scales[u]!); });
    sizes.forEach((_, t) => expect(sameBits(w.sums()[t]!, s.sums()[t]!)).toBe(true));
  });

  it('WeightedMean through the kernel gives the average the unbuffered scalar fold gives', () => {
    const shape = (n: number, seed: number): Weights => [{ name: 'w', shape: [n], values: values(n, seed) }, { name: 'b', shape: [3], values: values(3, seed + 1) }];
    const mean = new WeightedMean(shape(5000, 0));
    const sums = [new Float64Array(5000), new Float64Array(3)];
    let total = 0;
    for (let u = 0; u < 11; u++) {
      const w = shape(5000, 10 + u);
      const n = 1 + u * 7;
      mean.fold({ updateId: `u${u}`, nodeId: `n${u}`, round: 1, numExamples: n, weights: w, metrics: {} });
      w.forEach((t, i) => foldScaledScalar(sums[i]!, t.values, n));
      total += n;
    }
    const r = mean.finish([]);
    sums.forEach((s, i) => {
      const want = Float32Array.from(s, (v) => v * (1 / total));
      expect(Buffer.from(r.weights[i]!.values.buffer).equals(Buffer.from(want.buffer))).toBe(true);
    });
  });
});

describe('fold kernel: scaled averages', () => {
  it('rounds sums × factor to float32 exactly as a Float32Array store does, across blocks and tails', () => {
    for (const sizes of [[1], [6], [KERNEL_BLOCK * KERNEL_MAX_K + 5, 3]]) {
      const w = new WeightedSum(sizes);
      const s = new WeightedSum(sizes, { kernel: 'scalar' });
      for (let u = 0; u < 3; u++) {
        const xs = sizes.map((n, t) => values(n, 7 + u + t));
        w.add(xs, 3 + u);
        s.add(xs, 3 + u);
      }
      for (const factor of [1, 1 / 3, 1 / 7919, 1e-30, 1e30]) {
        const got = w.scaled(factor);
        const want = s.sums().map((sum) => Float32Array.from(sum, (v) => v * factor));
        sizes.forEach((_, t) => expect(Buffer.from(got[t]!.buffer).equals(Buffer.from(want[t]!.buffer))).toBe(true));
      }
    }
  });
});

describe('fold kernel: updates given as little-endian bytes', () => {
  it('folds bytes at any offset to the same bits as the float32 values, on both kernels', () => {
    const sizes = [KERNEL_BLOCK + 3, 5];
    const updates = Array.from({ length: 5 }, (_, u) => sizes.map((n, t) => values(n, 40 + u + t)));
    const asBytes = (x: Float32Array, shift: number) => {
      const b = new Uint8Array(x.byteLength + shift);
      b.set(new Uint8Array(x.buffer, x.byteOffset, x.byteLength), shift);
      return b.subarray(shift);
    };
    for (const kernel of ['wasm', 'scalar'] as const) {
      const a = new WeightedSum(sizes, { kernel });
      const b = new WeightedSum(sizes, { kernel });
      updates.forEach((xs, u) => {
        a.add(xs, u + 1);
        b.add(xs.map((x, t) => asBytes(x, (u + t) % 4)), u + 1);
      });
      sizes.forEach((_, t) => expect(sameBits(a.sums()[t]!, b.sums()[t]!)).toBe(true));
    }
    expect(() => new WeightedSum([2]).add([new Uint8Array(7)], 1)).toThrow(/expected 2/);
  });
});

describe('fold kernel: updates decoded into slots', () => {
  const sizes = [KERNEL_BLOCK + 3, 5, 0, 2];

  it('folds updates in slots where they lie, alone or mixed with staged ones, to the scalar loop’s bits', () => {
    for (const k of [1, 3, KERNEL_MAX_K]) {
      const n = 2 * k + 3;
      const updates = Array.from({ length: n }, (_, u) => sizes.map((size, t) => values(size, 200 + u * 13 + t)));
      const scales = Array.from({ length: n }, (_, u) => [3, 0.25, 7919, 1e-3][u % 4]!);
      const sum = new WeightedSum(sizes, { maxBuffered: k });
      let inSlots = 0;
      updates.forEach((xs, u) => {
        // Every third update arrives as ordinary arrays (staged), the others are decoded into a slot.
        const slot = u % 3 === 2 ? undefined : sum.reserve();
        if (!slot) return sum.add(xs, scales[u]!);
        inSlots++;
        slot.forEach((v, t) => v.set(xs[t]!));
        sum.add(slot, scales[u]!);
      });
      expect(inSlots).toBeGreaterThan(n / 2);
      const got = sum.sums();
      const want = scalarReference(sizes, updates, scales);
      sizes.forEach((_, t) => expect(sameBits(got[t]!, want[t]!)).toBe(true));
    }
  });

  it('a released slot is not folded and is handed out again; a full set of reservations falls back to copies', () => {
    const sum = new WeightedSum([6], { maxBuffered: 2 });
    const a = sum.reserve()!;
    a[0]!.set(values(6, 1));
    sum.release(a);
    const b = sum.reserve()!;
    expect(b[0]).toBe(a[0]);
    const c = sum.reserve()!;
    expect(c[0]).not.toBe(b[0]);
    expect(sum.reserve()).toBeUndefined(); // both slots reserved, none pending: nothing to flush
    const x = values(6, 2);
    const y = values(6, 3);
    b[0]!.set(x);
    c[0]!.set(y);
    sum.add(b, 2);
    sum.add(c, 5);
    expect(sum.buffered).toBe(0); // k = 2: folded, both slots free again
    expect(sum.reserve()).toBeDefined();
    expect(sameBits(sum.sums()[0]!, scalarReference([6], [[x], [y]], [2, 5])[0]!)).toBe(true);
  });

  it('reserving while slots wait to be folded folds them first', () => {
    const sum = new WeightedSum([5], { maxBuffered: 4, slots: 1 });
    const x = values(5, 9);
    const s = sum.reserve()!;
    s[0]!.set(x);
    sum.add(s, 3);
    expect(sum.buffered).toBe(1);
    const again = sum.reserve()!;
    expect(sum.buffered).toBe(0);
    again[0]!.fill(0);
    expect(sameBits(sum.sums()[0]!, scalarReference([5], [[x]], [3])[0]!)).toBe(true);
  });

  it('arrays that only look like a slot are copied, and the scalar kernel has no slots', () => {
    const sum = new WeightedSum([4], { maxBuffered: 2 });
    const slot = sum.reserve()!;
    sum.release(slot);
    slot[0]!.set([1, 2, 3, 4]);
    sum.add(slot, 1); // released: treated as ordinary arrays, staged
    slot[0]!.set([9, 9, 9, 9]);
    expect(Array.from(sum.sums()[0]!)).toEqual([9, 9, 9, 9]); // staged at the flush, after the overwrite: callers must not write after add
    expect(new WeightedSum([4], { kernel: 'scalar' }).reserve()).toBeUndefined();
    expect(new WeightedSum([4], { slots: 0 }).reserve()).toBeUndefined();
  });
});

describe('fold kernel: helper threads', () => {
  const sizes = [3 * KERNEL_BLOCK + 13, 7, 1];

  async function helpersRunning(): Promise<number> {
    const n = startHelpers();
    const deadline = Date.now() + 10_000;
    while (helpersReady() < n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    return helpersReady();
  }

  it('folds slot-resident updates in parts on helper threads, to the scalar loop’s bits', async () => {
    const running = await helpersRunning();
    expect(running).toBe(helperCount());
    for (const threads of [2, 4]) {
      for (const k of [1, 3, KERNEL_MAX_K]) {
        const n = 2 * k + 1;
        const updates = Array.from({ length: n }, (_, u) => sizes.map((size, t) => values(size, 500 + u * 17 + t)));
        const scales = Array.from({ length: n }, (_, u) => [3, 0.5, 1e-3, 7919][u % 4]!);
        const sum = new WeightedSum(sizes, { maxBuffered: k, threads, parallelMinValues: 0 });
        expect(sum.threads).toBe(threads);
        updates.forEach((xs, u) => {
          // One update in four staged (a mixed pass folds on the caller alone), the rest in slots.
          const slot = u % 4 === 3 ? undefined : sum.reserve();
          if (!slot) return sum.add(xs, scales[u]!);
          slot.forEach((v, t) => v.set(xs[t]!));
          sum.add(slot, scales[u]!);
        });
        const got = sum.sums();
        sizes.forEach((_, t) => expect(sameBits(got[t]!, scalarReference(sizes, updates, scales)[t]!)).toBe(true));
      }
    }
  });

  it('uses every running helper, and folds the parts of missing helpers on the caller', async () => {
    const running = await helpersRunning();
    for (const threads of [2, 4]) {
      const sum = new WeightedSum([40_000], { maxBuffered: 2, threads, parallelMinValues: 0 });
      const xs = [values(40_000, 1), values(40_000, 2)];
      for (const x of xs) {
        const slot = sum.reserve()!;
        slot[0]!.set(x);
        sum.add(slot, 2);
      }
      expect(sum.lastFoldThreads).toBe(1 + Math.min(running, threads - 1));
      expect(sameBits(sum.sums()[0]!, scalarReference([40_000], xs.map((x) => [x]), [2, 2])[0]!)).toBe(true);
    }
  });

  it('stays on one thread for small models, for the scalar kernel, and when told to', () => {
    expect(new WeightedSum([1000]).threads).toBe(1);
    expect(new WeightedSum([1 << 20], { threads: 1 }).threads).toBe(1);
    expect(new WeightedSum([1 << 20], { kernel: 'scalar' }).threads).toBe(1);
    expect(new WeightedSum([1 << 20]).threads).toBe(1 + helperCount());
  });
});

describe('fold kernel: memory reused across sums of one shape', () => {
  it('a disposed sum refuses further use, and the next sum of its shape starts from zero in the same memory', () => {
    const a = new WeightedSum([9, 4]);
    const slot = a.reserve()!;
    slot[0]!.set(values(9, 3));
    slot[1]!.set(values(4, 4));
    a.add(slot, 5);
    const memoryOfA = a.sums()[0]!.buffer;
    expect(a.sums()[0]!.some((v) => v !== 0)).toBe(true);
    a.dispose();
    a.dispose(); // twice is harmless
    expect(() => a.sums()).toThrow(/disposed/);
    expect(() => a.add([new Float32Array(9), new Float32Array(4)], 1)).toThrow(/disposed/);
    expect(() => a.reserve()).toThrow(/disposed/);
    const b = new WeightedSum([9, 4]);
    expect(b.sums()[0]!.buffer).toBe(memoryOfA); // the same memory, handed on
    expect(b.sums().every((s) => s.every((v) => v === 0))).toBe(true);
    const x = [values(9, 8), values(4, 9)];
    b.add(x, 2);
    [0, 1].forEach((t) => expect(sameBits(b.sums()[t]!, scalarReference([9, 4], [x], [2])[t]!)).toBe(true));
  });

  it('WeightedMean gives its memory back when it finishes; its results stay valid', () => {
    const shape = (seed: number): Weights => [{ name: 'w', shape: [300], values: values(300, seed) }];
    const m1 = new WeightedMean(shape(0));
    m1.fold({ updateId: 'a', nodeId: 'n', round: 1, numExamples: 3, weights: shape(1), metrics: {} });
    const r1 = m1.finish([]).weights[0]!.values;
    const copy = Float32Array.from(r1);
    const m2 = new WeightedMean(shape(0));
    m2.fold({ updateId: 'b', nodeId: 'n', round: 2, numExamples: 5, weights: shape(2), metrics: {} });
    m2.finish([]);
    expect(Buffer.from(r1.buffer).equals(Buffer.from(copy.buffer))).toBe(true);
    expect(() => m1.finish([])).toThrow(/disposed/);
  });
});
