/**
 * The WebAssembly module behind the fold kernel, assembled here from opcodes so that the repository holds
 * no binary blob: what runs is what this file says.
 *
 * Memory layout (one module instance per accumulator, sized once, never grown afterwards so that typed-array
 * views over it stay valid):
 *
 *   [0, 64)                       scales: up to MAX_K float64 multipliers, one per buffered update
 *   [64, 192)                     bases: one table per thread (MAX_THREADS), each of MAX_K int32 byte addresses,
 *                                 where each update's values start in that thread's part of the range
 *   [192, 192 + MAX_K·BLOCK·4)    staging: MAX_K slots of BLOCK float32 values, one block of each buffered update
 *   [ACC_OFFSET, ACC_OFFSET+8·P)  the float64 running sums
 *   [ARENA, …)                    update slots: whole decoded updates, written in place by the decoder
 *
 * `fold<K>(acc, n)` (K = 1..MAX_K) does, for i in [0, n): `acc[i] = (((acc[i] + x0[i]·s0) + x1[i]·s1) + …)`
 * with xk[i] the float32 at bases[k] + 4i (a staging slot, or a block of an update slot: then nothing is copied)
 * and sk = scales[k]: exactly the scalar loop's float64 arithmetic, one update after
 * the other (a product, then a sum, each rounded; no fused multiply-add), two lanes at a time with
 * `v128.load64_zero` / `f64x2.promote_low_f32x4` / `f64x2.mul` / `f64x2.add`. The accumulator is loaded and stored once per K
 * updates instead of once per update, which is what takes its traffic off the memory bus.
 */

/** Most updates folded per pass over the accumulator. */
export const MAX_K = 8;
/** float32 values per staging slot: MAX_K slots (256 KiB) plus the accumulator block (64 KiB) stay in L2. */
export const BLOCK = 8192;
export const SCALES_OFFSET = 0;
export const BASES_OFFSET = 64;
/** Threads that fold parts of one range at once (the caller and its helpers), each with its address table. */
export const MAX_THREADS = 4;
export const TABLE_BYTES = MAX_K * 4;
export const STAGING_OFFSET = BASES_OFFSET + MAX_THREADS * TABLE_BYTES;
export const SLOT_BYTES = BLOCK * 4;
export const ACC_OFFSET = STAGING_OFFSET + MAX_K * SLOT_BYTES;
const PAGE = 65536;

// ------------------------------------------------------------------------------------------------- encoding

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

function vec(items: number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}

function name(s: string): number[] {
  const b = [...Buffer.from(s, 'utf8')];
  return [...uleb(b.length), ...b];
}

const I32 = 0x7f;
const F64 = 0x7c;
const V128 = 0x7b;

/** The few instructions the kernel uses. */
const op = {
  localGet: (i: number) => [0x20, ...uleb(i)],
  localSet: (i: number) => [0x21, ...uleb(i)],
  localTee: (i: number) => [0x22, ...uleb(i)],
  i32Const: (v: number) => [0x41, ...sleb(v)],
  i32Add: [0x6a],
  i32And: [0x71],
  i32Shl: [0x74],
  i32GeU: [0x4f],
  block: [0x02, 0x40],
  loop: [0x03, 0x40],
  br: (d: number) => [0x0c, ...uleb(d)],
  brIf: (d: number) => [0x0d, ...uleb(d)],
  end: [0x0b],
  i32Load: (offset: number) => [0x28, 2, ...uleb(offset)],
  f32Load: (offset: number) => [0x2a, 2, ...uleb(offset)],
  f64Load: (offset: number) => [0x2b, 3, ...uleb(offset)],
  f64Store: (offset: number) => [0x39, 3, ...uleb(offset)],
  f64PromoteF32: [0xbb],
  f32DemoteF64: [0xb6],
  f32Store: (offset: number) => [0x38, 2, ...uleb(offset)],
  f32x4DemoteF64x2Zero: [0xfd, ...uleb(0x5e)],
  /** Lanes 0-1 of the first operand, then lanes 0-1 of the second (two demoted halves into one f32x4). */
  shuffleLowLow: [0xfd, ...uleb(0x0d), 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23],
  f64Add: [0xa0],
  f64Mul: [0xa2],
  v128Load: (offset: number) => [0xfd, ...uleb(0x00), 4, ...uleb(offset)],
  v128Store: (offset: number) => [0xfd, ...uleb(0x0b), 4, ...uleb(offset)],
  /** Two float32 into lanes 0-1 (the rest zero): feeds f64x2.promote_low_f32x4 without a shuffle. */
  v128Load64Zero: (offset: number) => [0xfd, ...uleb(0x5d), 3, ...uleb(offset)],
  f64x2Splat: [0xfd, ...uleb(0x14)],
  f64x2PromoteLowF32x4: [0xfd, ...uleb(0x5f)],
  f64x2Add: [0xfd, ...uleb(0xf0)],
  f64x2Mul: [0xfd, ...uleb(0xf2)],
};

/**
 * Body of fold<K>(acc: i32, n: i32, tbl: i32): the K update addresses are read from the table at byte `tbl` (each
 * thread folding a part of the range has its own). Locals after the three params: i (element index), n4 (n rounded
 * down to 4), xi (4·i), lo, hi (v128), then K bases (i32), K splatted scales (v128) and K scalar scales (f64), then
 * a (f64).
 */
function foldBody(k: number): number[] {
  const ACC = 0;
  const N = 1;
  const TBL = 2;
  const I = 3;
  const N4 = 4;
  const XI = 5;
  const LO = 6;
  const HI = 7;
  const B = 8; // B + j: byte address of update j's first value
  const SV = B + k; // SV + j: v128 splat of scale j
  const SS = SV + k; // SS + j: f64 scale j
  const A = SS + k;
  const locals = [[...uleb(3), I32], [...uleb(2), V128], [...uleb(k), I32], [...uleb(k), V128], [...uleb(k), F64], [...uleb(1), F64]];
  const code: number[] = [];
  const c = (...parts: number[][]) => { for (const p of parts) code.push(...p); };
  for (let j = 0; j < k; j++) {
    c(op.i32Const(0), op.f64Load(SCALES_OFFSET + 8 * j), op.localTee(SS + j), op.f64x2Splat, op.localSet(SV + j));
    c(op.localGet(TBL), op.i32Load(4 * j), op.localSet(B + j));
  }
  c(op.localGet(N), op.i32Const(-4), op.i32And, op.localSet(N4));
  // Two lanes at a time: acc[i..i+4) as two f64x2, each update's x[i..i+4) as one f32x4 promoted in halves.
  c(op.block, op.loop);
  c(op.localGet(I), op.localGet(N4), op.i32GeU, op.brIf(1));
  const accAddr = () => [...op.localGet(ACC), ...op.localGet(I), ...op.i32Const(3), ...op.i32Shl, ...op.i32Add];
  const xAddr = (j: number) => [...op.localGet(B + j), ...op.localGet(XI), ...op.i32Add];
  c(op.localGet(I), op.i32Const(2), op.i32Shl, op.localSet(XI));
  c(accAddr(), op.v128Load(0), op.localSet(LO));
  c(accAddr(), op.v128Load(16), op.localSet(HI));
  for (let j = 0; j < k; j++) {
    // x[i], x[i+1] and x[i+2], x[i+3] as two 64-bit loads, each promoted to f64x2. The operand order of the adds
    // does not matter: IEEE addition is commutative, with the same rounding.
    c(xAddr(j), op.v128Load64Zero(0), op.f64x2PromoteLowF32x4, op.localGet(SV + j), op.f64x2Mul, op.localGet(LO), op.f64x2Add, op.localSet(LO));
    c(xAddr(j), op.v128Load64Zero(8), op.f64x2PromoteLowF32x4, op.localGet(SV + j), op.f64x2Mul, op.localGet(HI), op.f64x2Add, op.localSet(HI));
  }
  c(accAddr(), op.localGet(LO), op.v128Store(0));
  c(accAddr(), op.localGet(HI), op.v128Store(16));
  c(op.localGet(I), op.i32Const(4), op.i32Add, op.localSet(I), op.br(0), op.end, op.end);
  // The last n mod 4 values, one lane.
  c(op.block, op.loop);
  c(op.localGet(I), op.localGet(N), op.i32GeU, op.brIf(1));
  c(op.localGet(I), op.i32Const(2), op.i32Shl, op.localSet(XI));
  c(accAddr(), op.f64Load(0), op.localSet(A));
  for (let j = 0; j < k; j++) {
    c(op.localGet(A), xAddr(j), op.f32Load(0), op.f64PromoteF32, op.localGet(SS + j), op.f64Mul, op.f64Add, op.localSet(A));
  }
  c(accAddr(), op.localGet(A), op.f64Store(0));
  c(op.localGet(I), op.i32Const(1), op.i32Add, op.localSet(I), op.br(0), op.end, op.end);
  c(op.end);
  const body = [...vec(locals), ...code];
  return [...uleb(body.length), ...body];
}

/**
 * Body of scale(acc: i32, n: i32, inv: f64): staging[i] = float32(acc[i] · inv) for i in [0, n), n <= MAX_K·BLOCK.
 * The product is a float64 product and the float32 conversion rounds to nearest even: `values[i] = sum[i] * inv`
 * of a Float32Array in JavaScript, bit for bit.
 */
function scaleBody(): number[] {
  const ACC = 0;
  const N = 1;
  const INV = 2;
  const I = 3;
  const N4 = 4;
  const S = 5;
  const locals = [[...uleb(2), I32], [...uleb(1), V128]];
  const code: number[] = [];
  const c = (...parts: number[][]) => { for (const p of parts) code.push(...p); };
  const accAddr = () => [...op.localGet(ACC), ...op.localGet(I), ...op.i32Const(3), ...op.i32Shl, ...op.i32Add];
  const outAddr = () => [...op.localGet(I), ...op.i32Const(2), ...op.i32Shl];
  c(op.localGet(INV), op.f64x2Splat, op.localSet(S));
  c(op.localGet(N), op.i32Const(-4), op.i32And, op.localSet(N4));
  c(op.block, op.loop);
  c(op.localGet(I), op.localGet(N4), op.i32GeU, op.brIf(1));
  c(outAddr());
  c(accAddr(), op.v128Load(0), op.localGet(S), op.f64x2Mul, op.f32x4DemoteF64x2Zero);
  c(accAddr(), op.v128Load(16), op.localGet(S), op.f64x2Mul, op.f32x4DemoteF64x2Zero);
  c(op.shuffleLowLow, op.v128Store(STAGING_OFFSET));
  c(op.localGet(I), op.i32Const(4), op.i32Add, op.localSet(I), op.br(0), op.end, op.end);
  c(op.block, op.loop);
  c(op.localGet(I), op.localGet(N), op.i32GeU, op.brIf(1));
  c(outAddr(), accAddr(), op.f64Load(0), op.localGet(INV), op.f64Mul, op.f32DemoteF64, op.f32Store(STAGING_OFFSET));
  c(op.localGet(I), op.i32Const(1), op.i32Add, op.localSet(I), op.br(0), op.end, op.end);
  c(op.end);
  const body = [...vec(locals), ...code];
  return [...uleb(body.length), ...body];
}

/**
 * The module's bytes: fold1..fold<MAX_K> and scale over one memory, either its own (exported as `memory`) or, with
 * `shared`, a shared memory imported as `env.memory` (up to 4 GiB), which several threads' instances fold into.
 */
export function kernelModuleBytes(shared = false): Uint8Array {
  const ks = Array.from({ length: MAX_K }, (_, i) => i + 1);
  const memory = shared
    ? [...section(2, vec([[...name('env'), ...name('memory'), 0x02, 0x03, ...uleb(1), ...uleb(65536)]]))]
    : [];
  const ownMemory = shared ? [] : [...section(5, vec([[0x00, ...uleb(Math.ceil(ACC_OFFSET / PAGE))]]))];
  const memoryExport = shared ? [] : [[...name('memory'), 0x02, 0x00]];
  const bytes = [
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vec([[0x60, ...vec([[I32], [I32], [I32]]), ...vec([])], [0x60, ...vec([[I32], [I32], [F64]]), ...vec([])]])),
    ...memory,
    ...section(3, vec([...ks.map(() => uleb(0)), uleb(1)])),
    ...ownMemory,
    ...section(7, vec([...memoryExport, ...ks.map((k) => [...name(`fold${k}`), 0x00, ...uleb(k - 1)]), [...name('scale'), 0x00, ...uleb(MAX_K)]])),
    ...section(10, vec([...ks.map(foldBody), scaleBody()])),
  ];
  return Uint8Array.from(bytes);
}

/** The slice of the WebAssembly JS API used here (the project's `lib` has no DOM typings). */
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
type WasmModule = object;
interface WasmApi {
  validate(bytes: Uint8Array): boolean;
  Module: new (bytes: Uint8Array) => WasmModule;
  Memory: new (descriptor: { initial: number; maximum: number; shared: boolean }) => WasmMemory;
  Instance: new (module: WasmModule, imports: object) => { exports: Record<string, unknown> };
}
const wasmApi = (globalThis as unknown as { WebAssembly?: WasmApi }).WebAssembly;

export interface KernelInstance {
  memory: WasmMemory;
  /** folds[k - 1](acc, n, tbl) folds k updates whose addresses are in the table at byte `tbl`. */
  folds: ((acc: number, n: number, tbl: number) => void)[];
  scale: (acc: number, n: number, inv: number) => void;
}

let compiled: WasmModule | null | undefined;

let compiledShared: WasmModule | null | undefined;

/** The compiled module, or null where WebAssembly SIMD is missing (then callers use the scalar loop). */
export function kernelModule(): WasmModule | null {
  if (compiled === undefined) {
    const bytes = kernelModuleBytes();
    compiled = wasmApi && wasmApi.validate(bytes) ? new wasmApi.Module(bytes) : null;
  }
  return compiled;
}

/** The variant over an imported shared memory, or null where shared WebAssembly memory is missing. */
export function sharedKernelModule(): WasmModule | null {
  if (compiledShared === undefined) {
    const bytes = kernelModuleBytes(true);
    compiledShared = wasmApi && typeof SharedArrayBuffer === 'function' && wasmApi.validate(bytes) ? new wasmApi.Module(bytes) : null;
  }
  return compiledShared;
}

/** Byte address of the first update slot in an instance holding `accValues` sums (64-byte aligned). */
export function arenaOffset(accValues: number): number {
  return Math.ceil((ACC_OFFSET + accValues * 8) / 64) * 64;
}

/**
 * Kernel instances given back by `releaseKernel`, by shape, for the next accumulator of the same shape (the next
 * round): reusing one saves mapping and first touching its memory again (~40 ms at 4M parameters; ~100 ms for a
 * shared memory, whose helpers also keep their instance over it). At most two are kept.
 */
const idle = new Map<string, KernelInstance>();
const IDLE_MAX = 2;

function shapeKey(module: WasmModule, accValues: number, slotValues: number): string {
  return `${module === compiledShared ? 'shared' : 'own'}:${accValues}:${slotValues}`;
}

/** An instance for this shape: a released one with its sums zeroed, or a fresh one (`instantiateKernel`). */
export function acquireKernel(module: WasmModule, accValues: number, slotValues = 0): KernelInstance {
  const key = shapeKey(module, accValues, slotValues);
  const reused = idle.get(key);
  if (!reused) return instantiateKernel(module, accValues, slotValues);
  idle.delete(key);
  new Float64Array(reused.memory.buffer, ACC_OFFSET, accValues).fill(0);
  return reused;
}

/** Gives an instance back for reuse; the caller must not touch its memory again. */
export function releaseKernel(module: WasmModule, accValues: number, slotValues: number, kernel: KernelInstance): void {
  const key = shapeKey(module, accValues, slotValues);
  idle.delete(key);
  idle.set(key, kernel);
  while (idle.size > IDLE_MAX) idle.delete(idle.keys().next().value!);
}

/**
 * A fresh instance whose memory holds `accValues` float64 sums after the staging area, then `slotValues` float32.
 * With the shared variant (`sharedKernelModule`), the memory is a new shared one of exactly that size, which
 * helper threads can instantiate the same module over.
 */
export function instantiateKernel(module: WasmModule, accValues: number, slotValues = 0): KernelInstance {
  const needed = arenaOffset(accValues) + slotValues * 4;
  if (module === compiledShared) {
    const pages = Math.ceil(needed / PAGE);
    const memory = new wasmApi!.Memory({ initial: pages, maximum: pages, shared: true });
    const instance = new wasmApi!.Instance(module, { env: { memory } });
    const folds = Array.from({ length: MAX_K }, (_, i) => instance.exports[`fold${i + 1}`] as (acc: number, n: number, tbl: number) => void);
    return { memory, folds, scale: instance.exports.scale as (acc: number, n: number, inv: number) => void };
  }
  const instance = new wasmApi!.Instance(module, {});
  const memory = instance.exports.memory as WasmMemory;
  const have = memory.buffer.byteLength;
  if (needed > have) memory.grow(Math.ceil((needed - have) / PAGE));
  const folds = Array.from({ length: MAX_K }, (_, i) => instance.exports[`fold${i + 1}`] as (acc: number, n: number, tbl: number) => void);
  return { memory, folds, scale: instance.exports.scale as (acc: number, n: number, inv: number) => void };
}
