import { copyBytes } from '../../common/index.ts';
import { FedStreamError } from '../../common/index.ts';
import { foldParts, helperCount, type FoldPart } from './threads.ts';
import { ACC_OFFSET, BASES_OFFSET, BLOCK, MAX_K, MAX_THREADS, SCALES_OFFSET, SLOT_BYTES, STAGING_OFFSET, TABLE_BYTES, acquireKernel, arenaOffset, kernelModule, releaseKernel, sharedKernelModule, type KernelInstance } from './wasm.ts';

/** acc[i] += x[i] * scale, in float64: the scalar reference every kernel must equal bit for bit. */
export function foldScaledScalar(acc: Float64Array, x: Float32Array, scale: number): void {
  const n = acc.length;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    acc[i] = acc[i]! + x[i]! * scale;
    acc[i + 1] = acc[i + 1]! + x[i + 1]! * scale;
    acc[i + 2] = acc[i + 2]! + x[i + 2]! * scale;
    acc[i + 3] = acc[i + 3]! + x[i + 3]! * scale;
  }
  for (; i < n; i++) acc[i] = acc[i]! + x[i]! * scale;
}

/** Float32 values of little-endian bytes (a copy only when they are not 4-byte aligned). */
function asFloat32(x: Float32Array | Uint8Array): Float32Array {
  if (x instanceof Float32Array) return x;
  if (x.byteOffset % 4 === 0) return new Float32Array(x.buffer, x.byteOffset, x.length / 4);
  return new Float32Array(Uint8Array.from(x).buffer);
}

export interface WeightedSumOptions {
  /**
   * Most updates held (in a slot, or by reference to the caller's arrays) before they are folded in one pass over
   * the accumulator; default: as many as fit in `maxBufferedBytes`, between 1 and 8. 1 folds every update at once.
   */
  maxBuffered?: number;
  /** Cap on the float32 bytes of buffered updates, and so of the slots (default 128 MiB): memory stays O(parameters). */
  maxBufferedBytes?: number;
  /**
   * Update slots in WebAssembly memory handed out by `reserve()` (default: as many as updates are buffered,
   * 0 for none). An update decoded into a slot is folded where it lies, without the staging copy.
   */
  slots?: number;
  /** `wasm` (default where WebAssembly SIMD exists) or `scalar` (the plain JavaScript loop, unbuffered). */
  kernel?: 'wasm' | 'scalar';
  /**
   * Threads that fold updates in slots, each its own part of the parameters (default: the process's cores, at most
   * 4; see threads.ts). 1 folds on the calling thread only. Same bits whatever the number.
   */
  threads?: number;
  /** Fewest values (the sum of the tensor sizes) for which helper threads are used (default 262,144). */
  parallelMinValues?: number;
}

/** Below this many values a fold takes microseconds, about what signalling a helper thread costs. */
const PARALLEL_MIN_VALUES = 1 << 18;

interface Slot {
  /** Byte address of the slot's first value in the kernel's memory. */
  readonly base: number;
  /** One float32 view per tensor, over the slot. */
  readonly views: Float32Array[];
  state: 'free' | 'reserved' | 'pending';
}

type Pending = { slot: Slot; xs?: undefined; scale: number } | { slot?: undefined; xs: readonly (Float32Array | Uint8Array)[]; scale: number };

/**
 * Running float64 sums Σ scale_k · x_k over tensors of fixed sizes: the hot path of federated averaging.
 *
 * With the WebAssembly SIMD kernel, `add` keeps a reference to up to K updates and folds them together: every
 * value of the sums is read and written once per K updates rather than once per update. An update handed to
 * `add` as ordinary arrays is copied, one cache-sized block at a time, into a staging area the kernel can read
 * (WebAssembly code reads only its own memory); one decoded straight into a slot from `reserve()` is read where
 * it lies, which is what the aggregator does. The arithmetic is the scalar loop's, in the same order (update by
 * update, a float64 product then a float64 sum), so results are identical to `foldScaledScalar` applied to the
 * updates one after the other. Callers must not modify an update's arrays after `add` until the next `flush`
 * (or `sums`), which the aggregator never does: each decoded update is its own fresh arrays or slot.
 */
export class WeightedSum {
  /** Which kernel folds: `wasm-simd` or `scalar`. */
  readonly kernel: 'wasm-simd' | 'scalar';
  /** Updates folded per pass over the accumulator. */
  readonly k: number;
  private readonly sizes: number[];
  private readonly offsets: number[];
  private readonly total: number;
  private readonly views: Float64Array[];
  private readonly wasm: KernelInstance | undefined;
  private readonly staging: Float32Array | undefined;
  private readonly stagingBytes: Uint8Array | undefined;
  private readonly scales: Float64Array | undefined;
  private readonly bases: Int32Array | undefined;
  /** Threads folding slot-resident updates (1: the caller only; more: the memory is shared with helpers). */
  readonly threads: number;
  /** Threads that took part in the last fold of updates in slots (helpers not yet started leave their part to the caller). */
  lastFoldThreads = 0;
  private readonly module: object | undefined;
  /** The kernel memory's buffer, taken once: views over it are recognised by it. */
  private readonly buffer: ArrayBufferLike | undefined;
  private readonly slots: Slot[] = [];
  private readonly pending: Pending[] = [];
  private readonly slotValues: number = 0;
  private disposed = false;

  constructor(sizes: readonly number[], options: WeightedSumOptions = {}) {
    this.sizes = [...sizes];
    this.offsets = [];
    let total = 0;
    for (const n of this.sizes) {
      if (!Number.isInteger(n) || n < 0) throw new FedStreamError('INTERNAL', `tensor size ${n} is not a non-negative integer`);
      this.offsets.push(total);
      total += n;
    }
    this.total = total;
    const plain = options.kernel === 'scalar' ? null : kernelModule();
    const threads = Math.max(1, Math.min(MAX_THREADS, Math.floor(options.threads ?? 1 + helperCount())));
    const shared = plain && threads > 1 && total >= (options.parallelMinValues ?? PARALLEL_MIN_VALUES) ? sharedKernelModule() : null;
    const module = shared ?? plain;
    // wasm32 addresses 4 GiB; stay well inside it.
    const limit = 2 ** 31;
    if (module && arenaOffset(total) <= limit) {
      this.kernel = 'wasm-simd';
      this.threads = shared ? threads : 1;
      this.module = module;
      const fit = Math.floor((options.maxBufferedBytes ?? 128 * 2 ** 20) / Math.max(1, total * 4));
      this.k = Math.max(1, Math.min(MAX_K, options.maxBuffered ?? MAX_K, fit));
      const wanted = total === 0 ? 0 : Math.max(0, Math.floor(options.slots ?? this.k));
      const slotCount = Math.min(wanted, Math.floor((limit - arenaOffset(total)) / Math.max(1, total * 4)));
      this.slotValues = slotCount * total;
      this.wasm = acquireKernel(module, total, this.slotValues);
      const buf = this.wasm.memory.buffer;
      this.buffer = buf;
      this.staging = new Float32Array(buf, STAGING_OFFSET, MAX_K * BLOCK);
      this.stagingBytes = new Uint8Array(buf, STAGING_OFFSET, MAX_K * BLOCK * 4);
      this.scales = new Float64Array(buf, SCALES_OFFSET, MAX_K);
      this.bases = new Int32Array(buf, BASES_OFFSET, MAX_THREADS * MAX_K);
      this.views = this.sizes.map((n, t) => new Float64Array(buf, ACC_OFFSET + this.offsets[t]! * 8, n));
      for (let j = 0; j < slotCount; j++) {
        const base = arenaOffset(total) + j * total * 4;
        this.slots.push({ base, views: this.sizes.map((n, t) => new Float32Array(buf, base + this.offsets[t]! * 4, n)), state: 'free' });
      }
    } else {
      this.kernel = 'scalar';
      this.threads = 1;
      this.k = 1;
      this.views = this.sizes.map((n) => new Float64Array(n));
    }
  }

  /**
   * Gives the kernel's memory back for the next WeightedSum of the same shape (the next round's): the sums, slots
   * and their views must not be used afterwards (calls throw). Results from `scaled` are copies and stay valid.
   */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.pending.length = 0;
    if (this.wasm) releaseKernel(this.module!, this.total, this.slotValues, this.wasm);
  }

  private live(): void {
    if (this.disposed) throw new FedStreamError('INTERNAL', 'this WeightedSum was disposed: its memory belongs to another one now');
  }

  /** Number of updates held and not yet folded. */
  get buffered(): number {
    return this.pending.length;
  }

  /**
   * Writable arrays, one per tensor, in the kernel's memory: decode the next update into them and pass them to
   * `add` (then nothing is copied), or give them back with `release` if the update is rejected. Undefined when
   * there is no slot (the scalar kernel, or every slot reserved): then decode into ordinary arrays.
   */
  reserve(): Float32Array[] | undefined {
    this.live();
    let slot = this.slots.find((s) => s.state === 'free');
    if (!slot && this.pending.some((p) => p.slot)) {
      this.flush();
      slot = this.slots.find((s) => s.state === 'free');
    }
    if (!slot) return undefined;
    slot.state = 'reserved';
    return slot.views;
  }

  /** Gives back arrays from `reserve()` that will not be added (anything else is ignored). */
  release(xs: readonly (Float32Array | Uint8Array)[] | undefined): void {
    const slot = xs && this.slotOf(xs);
    if (slot) slot.state = 'free';
  }

  /** The reserved slot whose views `xs` are, if they are. */
  private slotOf(xs: readonly (Float32Array | Uint8Array)[]): Slot | undefined {
    const first = xs[0];
    if (!(first instanceof Float32Array) || this.slots.length === 0 || first.buffer !== this.buffer) return undefined;
    const slot = this.slots.find((s) => s.views[0] === first);
    return slot && slot.state === 'reserved' && slot.views.every((v, t) => v === xs[t]) ? slot : undefined;
  }

  /**
   * Adds scale · xs: one array per tensor, of the sizes given at construction: a slot from `reserve()`, float32
   * values, or their little-endian bytes (as they travel in a TensorRecord; any byte offset).
   */
  add(xs: readonly (Float32Array | Uint8Array)[], scale: number): void {
    this.live();
    if (xs.length !== this.sizes.length) throw new FedStreamError('INTERNAL', `got ${xs.length} tensors, expected ${this.sizes.length}`);
    for (let t = 0; t < xs.length; t++) {
      const x = xs[t]!;
      const values = x instanceof Float32Array ? x.length : x.length / 4;
      if (values !== this.sizes[t]) throw new FedStreamError('INTERNAL', `tensor ${t} has ${values} values, expected ${this.sizes[t]}`);
    }
    if (this.kernel === 'scalar') {
      for (let t = 0; t < xs.length; t++) foldScaledScalar(this.views[t]!, asFloat32(xs[t]!), scale);
      return;
    }
    const slot = this.slotOf(xs);
    if (slot) {
      slot.state = 'pending';
      this.pending.push({ slot, scale });
    } else {
      this.pending.push({ xs, scale });
    }
    if (this.pending.length >= this.k) this.flush();
  }

  /** Folds the buffered updates into the sums. */
  flush(): void {
    this.live();
    const k = this.pending.length;
    if (k === 0) return;
    const fold = this.wasm!.folds[k - 1]!;
    for (let j = 0; j < k; j++) this.scales![j] = this.pending[j]!.scale;
    if (this.pending.every((p) => p.slot)) this.foldInPlace(fold);
    else this.foldStaged(fold);
    for (const p of this.pending) if (p.slot) p.slot.state = 'free';
    this.pending.length = 0;
  }

  /**
   * Some pending update is ordinary arrays: staged block by block, so that each block's copies are still in cache
   * when the kernel reads them (updates in slots in the same pass are read where they lie).
   */
  private foldStaged(fold: (acc: number, n: number, tbl: number) => void): void {
    const k = this.pending.length;
    const bases = this.bases!;
    for (let t = 0; t < this.sizes.length; t++) {
      const n = this.sizes[t]!;
      const accBase = ACC_OFFSET + this.offsets[t]! * 8;
      for (let start = 0; start < n; start += BLOCK) {
        const end = Math.min(n, start + BLOCK);
        for (let j = 0; j < k; j++) {
          const p = this.pending[j]!;
          if (p.slot) {
            bases[j] = p.slot.base + (this.offsets[t]! + start) * 4;
            continue;
          }
          const x = p.xs[t]!;
          if (x instanceof Float32Array) this.staging!.set(x.subarray(start, end), j * BLOCK);
          else copyBytes(this.stagingBytes!, x.subarray(start * 4, end * 4), j * BLOCK * 4);
          bases[j] = STAGING_OFFSET + j * SLOT_BYTES;
        }
        fold(accBase + start * 8, end - start, BASES_OFFSET);
      }
    }
  }

  /**
   * Every pending update is in a slot: nothing to copy. Slots share the accumulator's layout (value i of every
   * tensor at the same index), so all tensors are one range, cut into one part per thread.
   */
  private foldInPlace(fold: (acc: number, n: number, tbl: number) => void): void {
    const k = this.pending.length;
    const parts: FoldPart[] = [];
    const chunk = Math.ceil(this.total / this.threads / 16) * 16;
    for (let start = 0, t = 0; start < this.total; start += chunk, t++) {
      for (let j = 0; j < k; j++) this.bases![t * MAX_K + j] = this.pending[j]!.slot!.base + start * 4;
      parts.push({ start, n: Math.min(chunk, this.total - start), tbl: BASES_OFFSET + t * TABLE_BYTES });
    }
    if (parts.length > 1) {
      this.lastFoldThreads = foldParts(this.module!, this.wasm!.memory, k, (start) => ACC_OFFSET + start * 8, parts, fold);
    } else if (parts.length === 1) {
      fold(ACC_OFFSET, this.total, BASES_OFFSET);
      this.lastFoldThreads = 1;
    }
  }

  /** The running sums, one float64 array per tensor (views that stay valid for the life of this object). */
  sums(): Float64Array[] {
    this.flush();
    return this.views;
  }

  /**
   * The sums times `factor`, rounded to float32: `Float32Array.from(sum, (v) => v * factor)` per tensor, bit for
   * bit (a float64 product, then round to nearest even).
   */
  scaled(factor: number): Float32Array[] {
    const sums = this.sums();
    if (this.kernel === 'scalar') {
      return sums.map((sum) => {
        const out = new Float32Array(sum.length);
        for (let j = 0; j < sum.length; j++) out[j] = sum[j]! * factor;
        return out;
      });
    }
    const staging = this.staging!;
    const scale = this.wasm!.scale;
    const step = MAX_K * BLOCK;
    return this.sizes.map((n, t) => {
      const out = new Float32Array(n);
      const accBase = ACC_OFFSET + this.offsets[t]! * 8;
      for (let start = 0; start < n; start += step) {
        const len = Math.min(step, n - start);
        scale(accBase + start * 8, len, factor);
        out.set(staging.subarray(0, len), start);
      }
      return out;
    });
  }

  /** Number of values per pass: the sum of the tensor sizes. */
  get size(): number {
    return this.total;
  }
}
