/**
 * Section 1: the aggregation kernel. N updates of P float32 parameters folded into the float64 running
 * weighted sum exactly as the aggregator does (FedAvg's WeightedMean: fold() per update, then finish()), with
 * and without decoding (Avro ModelUpdate + unpackTensors), against two references measured in the same run on
 * the same inputs: the bulk-copy rate (TypedArray.prototype.set) and Flower's aggregate / aggregate_inplace.
 */
import path from 'node:path';
import { WeightedSum, foldScaledScalar, type WeightedSumOptions } from '../src/aggregator/kernels/index.ts';
import { WeightedMean } from '../src/aggregator/strategies/fedavg.ts';
import { packTensors, unpackTensors, type ModelUpdateRecord } from '../src/codec/index.ts';
import type { Weights } from '../src/codec/types.ts';
import { codec, decode, decodeView } from '../src/protocol/wire.ts';
import { flowerPython } from '../scripts/flower.mjs';
import { ROOT, median, progress, round, run } from './lib.ts';

export interface AggregateFigures {
  p: number;
  n: number;
  reps: number;
  /**
   * Update bytes folded per second (decode excluded), through WeightedMean.reserve + fold + finish, each update
   * written into one of the kernel's slots as Aggregator.onPayload decodes it (that copy is the decoder's, untimed).
   */
  updateGbps: number;
  /** The same with the updates handed over as ordinary Float32Arrays: the kernel copies them into its staging area. */
  updateGbpsFromArrays: number;
  /** Milliseconds to set up one round's WeightedMean (a kernel instance and its slots) at the aggregator's defaults. */
  beginMs: number;
  /** Bytes the kernel reads and writes per second: updates, accumulator passes, the final float32 conversion. */
  trafficGbps: number;
  /**
   * Update bytes per second with decoding included, as Aggregator.onPayload: Avro decode with the tensor bytes as
   * views (decodeView) + unpackTensors into a slot (the one copy) + fold, then finish.
   */
  updateGbpsWithDecode: number;
  /** Decode alone as the aggregator decodes (decodeView + unpackTensors into a slot), update bytes per second. */
  decodeGbps: number;
  /** Decode alone the copying way (avsc's own bytes read + unpackTensors into new arrays), update bytes per second. */
  decodeCopyingGbps: number;
  /**
   * Alternative: decodeView, then the kernel fed the TensorRecord's bytes directly (WeightedSum.add accepts them),
   * staged block by block. Update bytes per second.
   */
  updateGbpsDecodeFromBytes: number;
  /**
   * From arrays (updateGbpsFromArrays), every byte the kernel's loads and stores move, cache included: the updates
   * read and written to the staging area and read again by the SIMD loop, the accumulator passes, the final
   * conversion. (From slots there is no staging: every byte moved is a compulsory one, trafficGbps.)
   */
  kernelTrafficGbpsFromArrays: number;
  /** TypedArray.prototype.set over the same update arrays: read + write bytes per second. */
  memcpyGbps: number;
  /** The plain scalar JavaScript loop (the kernel before this work), update bytes per second. */
  scalarGbps: number;
  /** WeightedSum alone at each number of buffered updates K, updates in slots, update bytes per second. */
  kernelByK?: Record<string, number>;
  /** Updates folded per pass over the accumulator by WeightedMean's default. */
  k: number;
  kernel: string;
  flowerGbps: number | null;
  flowerInplaceGbps: number | null;
  /** The arithmetic of aggregate_inplace on already-decoded arrays (x *= s; acc += x), update bytes per second. */
  numpyInplaceFoldGbps: number | null;
  flower: Record<string, unknown> | null;
  /** trafficGbps / memcpyGbps (goal at P = 4M: >= 0.7). */
  trafficToMemcpy: number;
  /** updateGbps / flowerInplaceGbps (goal at P = 4M: >= 1.5). */
  toFlowerInplace: number | null;
  /** updateGbps / numpyInplaceFoldGbps: the same comparison with numpy's decoding left out too. */
  toNumpyInplaceFold: number | null;
  /** Largest |ours - Flower's| over a few probe values: both folded the same inputs. */
  maxDiffToFlower: number | null;
  seconds: Record<string, number[]>;
}

/** Update k, value i: an integer hash turned into a float32 in [-0.5, 0.5); flower_bench.py computes the same bits. */
export function updateValues(k: number, p: number): Float32Array {
  const out = new Float32Array(p);
  const add = Math.imul(k + 1, 0x85ebca77) >>> 0;
  for (let i = 0; i < p; i++) {
    let x = (Math.imul(i, 0x9e3779b1) + add) >>> 0;
    x = (x ^ (x >>> 15)) >>> 0;
    x = Math.imul(x, 0x2c1b3c6d) >>> 0;
    x = (x ^ (x >>> 12)) >>> 0;
    out[i] = (x >>> 8) / 16777216 - 0.5;
  }
  return out;
}

export function numExamples(k: number): number {
  return 100 + ((k * 37) % 500);
}

/** The python that runs flower_bench.py: .cache/bench-venv with flwr (or numpy alone, then the copy of Flower's code); scripts/flower.mjs installs it. */
async function flowerPythonForBench(): Promise<{ python: string; fallback: boolean } | { error: string }> {
  try {
    const py = await flowerPython({ numpyFallback: true, log: progress });
    return { python: py.python, fallback: !py.flwr };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

async function runFlower(p: number, n: number, reps: number): Promise<Record<string, unknown> | { error: string }> {
  const py = await flowerPythonForBench();
  if ('error' in py) return py;
  // OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE slow a current numpy down where they are set: unset for this command only.
  const env = { ...process.env };
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  const args = [path.join(ROOT, 'bench', 'flower_bench.py'), '--p', String(p), '--n', String(n), '--reps', String(reps), ...(py.fallback ? ['--fallback'] : [])];
  const r = await run(py.python, args, { env, timeoutMs: 900_000 });
  if (r.code !== 0) return { error: `flower_bench.py exited ${r.code}: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}` };
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
}

function weightsOf(values: Float32Array): Weights {
  return [{ name: 'w', shape: [values.length], values }];
}

function meanFold(updates: Float32Array[], base: Weights): Float32Array {
  const mean = new WeightedMean(base);
  for (let k = 0; k < updates.length; k++) {
    mean.fold({ updateId: `u${k}`, nodeId: `n${k}`, round: 1, numExamples: numExamples(k), weights: weightsOf(updates[k]!), metrics: {} });
  }
  return mean.finish([]).weights[0]!.values;
}

/**
 * A full collection before a timed region (npm run bench runs node with --expose-gc), so that garbage from the
 * previous contender (arrays, kernel memory) is not collected inside this one.
 */
function collect(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

/**
 * What the aggregator does with decoded updates, at its defaults (K = 8 slots): each update is written into a
 * slot of the kernel's memory (by unpackTensors in Aggregator.onPayload: the decoder's copy, outside the clock
 * here), then folded there. Times reserve + fold + finish, i.e. all but that copy. `options` tune the kernel
 * options (the K sweep).
 */
function meanFoldInSlots(updates: Float32Array[], base: Weights, options?: WeightedSumOptions): { values: Float32Array; seconds: number } {
  const mean = new WeightedMean(base, options);
  collect();
  let seconds = 0;
  for (let k = 0; k < updates.length; k++) {
    let t0 = performance.now();
    const slot = mean.reserve();
    seconds += performance.now() - t0;
    if (!slot) throw new Error('the kernel offers no slot: WebAssembly memory too small?');
    slot[0]!.set(updates[k]!);
    t0 = performance.now();
    mean.fold({ updateId: `u${k}`, nodeId: `n${k}`, round: 1, numExamples: numExamples(k), weights: [{ name: 'w', shape: [updates[k]!.length], values: slot[0]! }], metrics: {} });
    seconds += performance.now() - t0;
  }
  const t0 = performance.now();
  const values = mean.finish([]).weights[0]!.values;
  seconds += performance.now() - t0;
  return { values, seconds: seconds / 1000 };
}

export async function benchAggregate(p: number, n: number, reps: number, opts: { sweepK: boolean; flower: boolean }): Promise<AggregateFigures> {
  const label = `aggregate P=${p} N=${n}`;
  progress(`${label}: generating ${n} updates (${((n * p * 4) / 2 ** 20).toFixed(0)} MiB)`);
  let updates: Float32Array[] = Array.from({ length: n }, (_, k) => updateValues(k, p));
  const base = weightsOf(new Float32Array(p));
  const updateBytes = n * p * 4;
  const probe = (r: Float32Array) => [0, 1, Math.floor(p / 2), p - 1].map((j) => r[j]!);
  const shapeProbe = new WeightedSum([p]);
  const { k, kernel } = shapeProbe;
  shapeProbe.dispose();
  const seconds: Record<string, number[]> = { memcpy: [], weightedMean: [], weightedMeanFromArrays: [], begin: [], scalar: [], decode: [], decodeCopying: [], weightedMeanWithDecode: [], decodeFromBytes: [] };
  const dst = new Float32Array(p);
  let ours: Float32Array | undefined;
  let oursFromArrays: Float32Array | undefined;
  let scalarSum: Float64Array | undefined;

  // One warm-up of each, then reps interleaved so that a change in machine load hits every contender alike.
  for (let rep = -1; rep < reps; rep++) {
    collect();
    let t0 = performance.now();
    for (let j = 0; j < n; j++) dst.set(updates[j]!);
    const tMemcpy = (performance.now() - t0) / 1000;
    const inSlots = meanFoldInSlots(updates, base);
    ours = inSlots.values;
    const tMean = inSlots.seconds;
    collect();
    t0 = performance.now();
    oursFromArrays = meanFold(updates, base);
    const tArrays = (performance.now() - t0) / 1000;
    t0 = performance.now();
    const begun = new WeightedMean(base);
    const tBegin = (performance.now() - t0) / 1000;
    // As the aggregator does with a round's aggregation: its memory goes back for the next one.
    begun.dispose();
    t0 = performance.now();
    scalarSum = new Float64Array(p);
    for (let j = 0; j < n; j++) foldScaledScalar(scalarSum, updates[j]!, numExamples(j));
    const tScalar = (performance.now() - t0) / 1000;
    if (rep >= 0) {
      seconds.memcpy!.push(tMemcpy);
      seconds.weightedMean!.push(tMean);
      seconds.weightedMeanFromArrays!.push(tArrays);
      seconds.begin!.push(tBegin);
      seconds.scalar!.push(tScalar);
    }
    progress(`${label}: rep ${rep < 0 ? 'warm-up' : rep + 1}: memcpy ${((2 * updateBytes) / tMemcpy / 1e9).toFixed(1)} GB/s, WeightedMean ${(updateBytes / tMean / 1e9).toFixed(2)} GB/s (from arrays ${(updateBytes / tArrays / 1e9).toFixed(2)}), scalar loop ${(updateBytes / tScalar / 1e9).toFixed(2)} GB/s`);
  }
  // Same bits as the scalar loop (the kernel's promise), checked on the real inputs.
  let total = 0;
  for (let j = 0; j < n; j++) total += numExamples(j);
  const inv = 1 / total;
  const want = Float32Array.from(scalarSum!, (v) => v * inv);
  if (!Buffer.from(want.buffer).equals(Buffer.from(ours!.buffer, ours!.byteOffset, ours!.byteLength))) throw new Error(`${label}: WeightedMean differs from the scalar loop`);
  if (!Buffer.from(want.buffer).equals(Buffer.from(oursFromArrays!.buffer))) throw new Error(`${label}: WeightedMean from arrays differs from the scalar loop`);

  let kernelByK: Record<string, number> | undefined;
  if (opts.sweepK) {
    kernelByK = {};
    for (const kk of [1, 2, 4, 8]) {
      const ts: number[] = [];
      // From slots, as updateGbps, K of them; an untimed warm-up first, as for every other figure (a new shape
      // maps and first-touches its memory, ~100 ms for a shared one at 4M).
      const options = { maxBuffered: kk, maxBufferedBytes: Number.MAX_SAFE_INTEGER };
      meanFoldInSlots(updates, base, options);
      for (let rep = 0; rep < Math.max(2, Math.ceil(reps / 2)); rep++) ts.push(meanFoldInSlots(updates, base, options).seconds);
      kernelByK[`k${kk}`] = round(updateBytes / median(ts) / 1e9, 2);
    }
    progress(`${label}: kernel alone by K (GB/s of updates): ${JSON.stringify(kernelByK)}`);
  }

  // Decode included: the updates as the aggregator receives them, single-object Avro ModelUpdate payloads.
  const payloads = updates.map((values, j) => {
    const rec: ModelUpdateRecord = {
      updateId: `u${j}`, tenant: 'bench', pipeline: 'agg', nodeId: `n${j}`, round: 1, baseVersion: 0, numExamples: numExamples(j),
      tensors: packTensors(weightsOf(values)), metrics: {}, trainingMs: 0, createdAt: 0, sdkVersion: 'bench', backend: 'none',
    };
    return codec().encode('ModelUpdate', rec);
  });
  updates = [];
  for (let rep = -1; rep < reps; rep++) {
    collect();
    let t0 = performance.now();
    for (const b of payloads) unpackTensors(decode('ModelUpdate', b).tensors);
    const tDecodeCopying = (performance.now() - t0) / 1000;
    const slots = new WeightedSum([p]);
    t0 = performance.now();
    for (const b of payloads) {
      const into = slots.reserve();
      unpackTensors(decodeView('ModelUpdate', b).tensors, into);
      slots.release(into);
    }
    const tDecode = (performance.now() - t0) / 1000;
    slots.dispose();
    t0 = performance.now();
    const mean = new WeightedMean(base);
    for (const b of payloads) {
      // As Aggregator.onPayload: tensor bytes as views, copied once, into a slot of the kernel's memory.
      const into = mean.reserve();
      const u = decodeView('ModelUpdate', b);
      mean.fold({ updateId: u.updateId, nodeId: u.nodeId, round: 1, numExamples: u.numExamples, weights: unpackTensors(u.tensors, into), metrics: u.metrics });
    }
    const r = mean.finish([]).weights[0]!.values;
    const tBoth = (performance.now() - t0) / 1000;
    if (!Buffer.from(r.buffer).equals(Buffer.from(want.buffer))) throw new Error(`${label}: decode-included result differs`);
    t0 = performance.now();
    const sum = new WeightedSum([p]);
    let examples = 0;
    for (const b of payloads) {
      const u = decodeView('ModelUpdate', b);
      sum.add(u.tensors.map((t) => t.data), u.numExamples);
      examples += u.numExamples;
    }
    const r2 = sum.scaled(1 / examples)[0]!;
    sum.dispose();
    const tBytes = (performance.now() - t0) / 1000;
    if (!Buffer.from(r2.buffer).equals(Buffer.from(want.buffer))) throw new Error(`${label}: fold from bytes differs`);
    if (rep >= 0) {
      seconds.decode!.push(tDecode);
      seconds.decodeCopying!.push(tDecodeCopying);
      seconds.weightedMeanWithDecode!.push(tBoth);
      seconds.decodeFromBytes!.push(tBytes);
    }
    progress(`${label}: rep ${rep < 0 ? 'warm-up' : rep + 1}: decode ${(updateBytes / tDecode / 1e9).toFixed(2)} GB/s (copying ${(updateBytes / tDecodeCopying / 1e9).toFixed(2)}), decode + fold ${(updateBytes / tBoth / 1e9).toFixed(2)} GB/s, decode + fold from the bytes, staged ${(updateBytes / tBytes / 1e9).toFixed(2)} GB/s`);
  }
  payloads.length = 0;

  let flower: Record<string, unknown> | null = null;
  if (opts.flower) {
    progress(`${label}: Flower aggregate / aggregate_inplace (python, same inputs)`);
    const f = await runFlower(p, n, reps);
    flower = f;
    if ('error' in f) progress(`${label}: Flower not measured: ${String(f.error)}`);
  }
  const fl = flower && !('error' in flower) ? flower : null;
  let maxDiffToFlower: number | null = null;
  if (fl) {
    const ref = [...(fl.probe as number[]), ...(fl.probeInplace as number[])];
    const mine = [...probe(want), ...probe(want)];
    maxDiffToFlower = Math.max(...ref.map((v, i) => Math.abs(v - mine[i]!)));
    if (!(maxDiffToFlower < 1e-5)) throw new Error(`${label}: Flower's average differs from ours by ${maxDiffToFlower}: not the same inputs`);
  }

  const tMean = median(seconds.weightedMean!);
  const passes = Math.ceil(n / k);
  const trafficBytes = updateBytes + passes * p * 16 + p * 12;
  const kernelTrafficBytesFromArrays = kernel === 'wasm-simd' ? 3 * updateBytes + passes * p * 16 + p * 12 : trafficBytes;
  const updateGbps = updateBytes / tMean / 1e9;
  const memcpyGbps = (2 * updateBytes) / median(seconds.memcpy!) / 1e9;
  const flowerInplaceGbps = fl ? (fl.flowerInplaceGbps as number) : null;
  const numpyInplaceFoldGbps = fl ? (fl.numpyInplaceFoldGbps as number) : null;
  return {
    p, n, reps,
    updateGbps: round(updateGbps),
    updateGbpsFromArrays: round(updateBytes / median(seconds.weightedMeanFromArrays!) / 1e9),
    beginMs: round(median(seconds.begin!) * 1000, 2),
    trafficGbps: round(trafficBytes / tMean / 1e9),
    updateGbpsWithDecode: round(updateBytes / median(seconds.weightedMeanWithDecode!) / 1e9),
    decodeGbps: round(updateBytes / median(seconds.decode!) / 1e9),
    decodeCopyingGbps: round(updateBytes / median(seconds.decodeCopying!) / 1e9),
    updateGbpsDecodeFromBytes: round(updateBytes / median(seconds.decodeFromBytes!) / 1e9),
    kernelTrafficGbpsFromArrays: round(kernelTrafficBytesFromArrays / median(seconds.weightedMeanFromArrays!) / 1e9),
    memcpyGbps: round(memcpyGbps),
    scalarGbps: round(updateBytes / median(seconds.scalar!) / 1e9),
    ...(kernelByK ? { kernelByK } : {}),
    k, kernel,
    flowerGbps: fl ? round(fl.flowerGbps as number) : null,
    flowerInplaceGbps: flowerInplaceGbps === null ? null : round(flowerInplaceGbps),
    numpyInplaceFoldGbps: numpyInplaceFoldGbps === null ? null : round(numpyInplaceFoldGbps),
    flower: fl ? Object.fromEntries(Object.entries(fl).filter(([key]) => !key.startsWith('probe'))) : flower,
    trafficToMemcpy: round(trafficBytes / tMean / 1e9 / memcpyGbps),
    toFlowerInplace: flowerInplaceGbps ? round(updateGbps / flowerInplaceGbps) : null,
    toNumpyInplaceFold: numpyInplaceFoldGbps ? round(updateGbps / numpyInplaceFoldGbps) : null,
    maxDiffToFlower,
    seconds: Object.fromEntries(Object.entries(seconds).map(([key, v]) => [key, v.map((x) => round(x, 4))])),
  };
}
