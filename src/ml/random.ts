/**
 * The one seeded PRNG of FedStream and what is built on it: the same seed gives the same split, partition,
 * batch order and sample everywhere (every process, every machine). Nothing in here touches Math.random.
 */

/** mulberry32: a small, fast 32-bit PRNG; returns floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Derives an independent 32-bit seed for one purpose (`deriveSeed(42, 'iid')`) so that streams never overlap. */
export function deriveSeed(seed: number, ...parts: Array<string | number>): number {
  // FNV-1a over the text, then one murmur3 finaliser round to spread the bits.
  let h = 0x811c9dc5;
  for (const ch of [seed, ...parts].join(':')) {
    h ^= ch.charCodeAt(0);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Fisher–Yates shuffle in place with the given PRNG. */
export function shuffleInPlace<T extends { length: number; [i: number]: number }>(arr: T, rng: () => number): T {
  for (let i = arr.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    const tmp = arr[i]!;
    arr[i] = arr[j]!;
    arr[j] = tmp;
  }
  return arr;
}

/** A seeded permutation of 0..n-1. */
export function permutation(n: number, rng: () => number): Int32Array {
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  return shuffleInPlace(p, rng);
}

/**
 * The first `m` items of a partial Fisher–Yates shuffle of a copy of `items`: m distinct items drawn without
 * replacement, in draw order. `rng` is called exactly m times (item i is swapped with one of i..n-1), so a caller
 * that used to inline the loop gets the same draws. Throws a RangeError when m is outside 0..items.length.
 */
export function sampleWithoutReplacement<T>(items: readonly T[], m: number, rng: () => number): T[] {
  if (!Number.isInteger(m) || m < 0 || m > items.length) throw new RangeError(`cannot draw ${m} of ${items.length} items`);
  const pool = [...items];
  for (let i = 0; i < m; i++) {
    const j = i + Math.floor(rng() * (pool.length - i));
    [pool[i], pool[j]] = [pool[j]!, pool[i]!];
  }
  return pool.slice(0, m);
}
