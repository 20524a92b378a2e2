import { describe, expect, it } from 'vitest';
import { mulberry32, permutation, sampleWithoutReplacement } from '../../src/ml/random.ts';

describe('seeded randomness', () => {
  it('is pinned: partitions must not change between releases or machines', () => {
    expect(Array.from(permutation(10, mulberry32(1)))).toEqual(Array.from(permutation(10, mulberry32(1))));
    const rng = mulberry32(42);
    expect([rng(), rng(), rng()].map((v) => v.toFixed(10))).toEqual(['0.6011037519', '0.4482905590', '0.8524657935']);
  });
});

describe('sampleWithoutReplacement', () => {
  it('draws m distinct items with m calls of the PRNG, as an inlined partial Fisher-Yates loop does', () => {
    const items = Array.from({ length: 20 }, (_, i) => `node-${i + 1}`);
    let calls = 0;
    const rng = mulberry32(7);
    const counted = () => { calls++; return rng(); };
    const got = sampleWithoutReplacement(items, 5, counted);
    expect(calls).toBe(5);
    expect(new Set(got).size).toBe(5);
    // The loop aggregator/strategies/fedavg.ts had inline, with the same PRNG: the same draws.
    const pool = [...items];
    const r = mulberry32(7);
    for (let i = 0; i < 5; i++) {
      const j = i + Math.floor(r() * (pool.length - i));
      [pool[i], pool[j]] = [pool[j]!, pool[i]!];
    }
    expect(got).toEqual(pool.slice(0, 5));
    expect(items[0]).toBe('node-1'); // the input is not shuffled
    expect(() => sampleWithoutReplacement(items, 21, rng)).toThrow(RangeError);
  });
});
