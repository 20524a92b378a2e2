/**
 * Helper threads for the fold kernel: the same WebAssembly module instantiated in worker threads over the
 * accumulator's shared memory, each folding its own part of the parameter range while the calling thread folds
 * the first part. One thread alone cannot keep enough memory reads in flight: at 4M parameters it folds about
 * 9 GB/s of updates, two threads about 19 (bench/probes/kernel-threads.ts).
 *
 * The calls stay synchronous: the caller signals each helper through a shared control word (Atomics.notify),
 * folds its own part, then waits (Atomics.wait) until every helper is done. Helpers are process-wide, started on
 * first use and unref'd, so they never keep a process alive; a helper not yet running is simply not used (its part
 * goes to the caller), so nothing ever waits for a thread to start. Every value is folded by exactly one thread with
 * the same arithmetic, so the result does not depend on how many threads took part.
 */
import { availableParallelism } from 'node:os';
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import { FedStreamError } from '../../common/index.ts';

/** Control word layout (Int32 indices). */
const CMD = 0;
const READY = 1;
const K = 2;
const ACC = 3;
const N = 4;
const TBL = 5;
const FAILED = 6;
const CTL_WORDS = 8;

const IDLE = 0;
const FOLD = 1;
const ATTACH = 2;

/** Most helpers: a fold is memory-bound, and a few threads reach the memory system's rate. */
export const MAX_HELPERS = 3;

/** How long a caller waits for a helper's part before it declares the helper lost. */
const HELPER_TIMEOUT_MS = 60_000;

const HELPER_SOURCE = `
const { workerData, receiveMessageOnPort } = require('node:worker_threads');
const { ctl, port } = workerData;
let instance = null;
Atomics.store(ctl, ${READY}, 1);
for (;;) {
  Atomics.wait(ctl, ${CMD}, ${IDLE});
  const cmd = Atomics.load(ctl, ${CMD});
  try {
    if (cmd === ${ATTACH}) {
      const { module, memory } = receiveMessageOnPort(port).message;
      instance = new WebAssembly.Instance(module, { env: { memory } });
    } else if (cmd === ${FOLD}) {
      instance.exports['fold' + ctl[${K}]](ctl[${ACC}], ctl[${N}], ctl[${TBL}]);
    }
  } catch (err) {
    Atomics.store(ctl, ${FAILED}, 1);
  }
  Atomics.store(ctl, ${CMD}, ${IDLE});
  Atomics.notify(ctl, ${CMD});
}
`;

interface Helper {
  ctl: Int32Array;
  port: MessagePort;
  /** The memory the helper's instance folds into, as last attached. */
  attached: object | undefined;
}

let helpers: Helper[] | undefined;

/** Number of helper threads this process uses: one fewer than its cores, at most MAX_HELPERS. */
export function helperCount(): number {
  return Math.max(0, Math.min(MAX_HELPERS, availableParallelism() - 1));
}

function pool(): Helper[] {
  if (!helpers) {
    helpers = Array.from({ length: helperCount() }, () => {
      const ctl = new Int32Array(new SharedArrayBuffer(CTL_WORDS * 4));
      const { port1, port2 } = new MessageChannel();
      const worker = new Worker(HELPER_SOURCE, { eval: true, workerData: { ctl, port: port2 }, transferList: [port2] });
      worker.unref();
      port1.unref();
      return { ctl, port: port1, attached: undefined };
    });
  }
  return helpers;
}

/** A part of the range: `n` values from value index `start`, folded with the address table at byte `tbl`. */
export interface FoldPart {
  start: number;
  n: number;
  tbl: number;
}

/**
 * Folds parts 1.. on helper threads and part 0 on the calling thread, then waits for the helpers. `module` is the
 * shared-memory variant of the kernel and `memory` the shared memory every part folds into. Returns how many
 * threads took part. Parts beyond the running helpers are folded by the caller.
 */
export function foldParts(
  module: object,
  memory: object,
  k: number,
  accAddr: (start: number) => number,
  parts: readonly FoldPart[],
  foldHere: (acc: number, n: number, tbl: number) => void,
): number {
  const all = pool();
  const busy: Helper[] = [];
  const mine: FoldPart[] = [parts[0]!];
  for (let p = 1; p < parts.length; p++) {
    const h = all[p - 1];
    const part = parts[p]!;
    if (!h || Atomics.load(h.ctl, READY) !== 1 || Atomics.load(h.ctl, FAILED) !== 0) {
      mine.push(part);
      continue;
    }
    if (h.attached !== memory && !attach(h, module, memory)) {
      mine.push(part);
      continue;
    }
    h.ctl[K] = k;
    h.ctl[ACC] = accAddr(part.start);
    h.ctl[N] = part.n;
    h.ctl[TBL] = part.tbl;
    Atomics.store(h.ctl, CMD, FOLD);
    Atomics.notify(h.ctl, CMD);
    busy.push(h);
  }
  for (const part of mine) foldHere(accAddr(part.start), part.n, part.tbl);
  for (const h of busy) wait(h);
  return 1 + busy.length;
}

/** Gives the helper an instance over `memory`; false (and the helper is not used again) if that failed. */
function attach(h: Helper, module: object, memory: object): boolean {
  h.port.postMessage({ module, memory });
  Atomics.store(h.ctl, CMD, ATTACH);
  Atomics.notify(h.ctl, CMD);
  try {
    wait(h);
  } catch {
    return false;
  }
  h.attached = memory;
  return true;
}

function wait(h: Helper): void {
  const deadline = Date.now() + HELPER_TIMEOUT_MS;
  while (Atomics.load(h.ctl, CMD) !== IDLE) {
    const cmd = Atomics.load(h.ctl, CMD);
    if (Atomics.wait(h.ctl, CMD, cmd, 1_000) === 'timed-out' && Date.now() > deadline) {
      throw new FedStreamError('INTERNAL', `a fold helper thread did not answer in ${HELPER_TIMEOUT_MS / 1000} s; the running sums are no longer reliable`);
    }
  }
  if (Atomics.load(h.ctl, FAILED) !== 0) {
    throw new FedStreamError('INTERNAL', 'a fold helper thread failed; the running sums are no longer reliable');
  }
}

/** Test hook: whether the helpers this process started are running. */
export function helpersReady(): number {
  return (helpers ?? []).filter((h) => Atomics.load(h.ctl, READY) === 1 && Atomics.load(h.ctl, FAILED) === 0).length;
}

/** Starts the helpers now (they are otherwise started by the first threaded fold) and returns how many there are. */
export function startHelpers(): number {
  return pool().length;
}
