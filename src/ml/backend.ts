import * as tf from '@tensorflow/tfjs';
import { getThreadsCount } from '@tensorflow/tfjs-backend-wasm';
import { ConfigError, FedStreamError } from '../common/index.ts';
import { rootLogger, type Logger } from '../common/index.ts';

/**
 * The one TensorFlow.js namespace every FedStream module uses. tfjs-node, when it is installed,
 * registers its `tensorflow` backend into this same engine (tfjs-core keeps its engine in a
 * global), so there is never a second tfjs instance with its own tensors and variables.
 */
export { tf };

export type BackendName = 'tensorflow' | 'wasm' | 'cpu';

/** Fastest first: native TensorFlow (tfjs-node), then WebAssembly (XNNPACK, SIMD), then plain JS. */
export const BACKEND_ORDER: readonly BackendName[] = ['tensorflow', 'wasm', 'cpu'];

/** Environment variable that pins the backend (`tensorflow`, `wasm` or `cpu`); `auto` or empty means the default order. */
export const BACKEND_ENV = 'FEDSTREAM_TFJS_BACKEND';

export interface BackendInfo {
  name: string;
  /** wasm only: the SIMD build was loaded. */
  simd?: boolean;
  /** wasm only: XNNPACK threads (1: tfjs disables wasm threads under Node). */
  threads?: number;
}

// A variable specifier keeps TypeScript and bundlers from resolving an optional dependency that may be absent.
const TFJS_NODE = '@tensorflow/tfjs-node';

let ready: Promise<string> | undefined;
let info: BackendInfo | undefined;

function fromEnv(env: NodeJS.ProcessEnv): BackendName | undefined {
  const raw = env[BACKEND_ENV]?.trim().toLowerCase();
  if (raw === undefined || raw === '' || raw === 'auto') return undefined;
  if ((BACKEND_ORDER as readonly string[]).includes(raw)) return raw as BackendName;
  throw new ConfigError(BACKEND_ENV, `expected one of ${BACKEND_ORDER.join(', ')} or auto, got "${env[BACKEND_ENV]}"`);
}

const PROCESS_EVENTS = ['uncaughtException', 'unhandledRejection'] as const;

async function tryBackend(name: BackendName, log: Logger): Promise<boolean> {
  const emitter: NodeJS.EventEmitter = process;
  const before = new Map(PROCESS_EVENTS.map((e) => [e, new Set(emitter.listeners(e))]));
  try {
    if (name === 'tensorflow') await import(TFJS_NODE);
    // setBackend resolves to false (it does not throw) when the backend's initialisation fails.
    if (!(await tf.setBackend(name))) {
      log.warn({ backend: name }, 'tfjs backend failed to initialise, trying the next one');
      return false;
    }
    await tf.ready();
    return true;
  } finally {
    // The Emscripten runtime of the wasm backend installs process handlers that rethrow every uncaught error
    // and rejection: they would run before the application's own handlers and print the minified module as the
    // crash site. Node's defaults do the same job cleanly.
    for (const event of PROCESS_EVENTS) {
      for (const listener of emitter.listeners(event)) {
        if (!before.get(event)!.has(listener)) emitter.removeListener(event, listener as (...args: unknown[]) => void);
      }
    }
  }
}

async function attempt(name: BackendName, log: Logger, requested: boolean): Promise<boolean> {
  try {
    return await tryBackend(name, log);
  } catch (err) {
    const e = err as { code?: string; message?: string };
    const missing = name === 'tensorflow' && (e.code === 'ERR_MODULE_NOT_FOUND' || /cannot find (package|module)/i.test(e.message ?? ''));
    if (missing) log[requested ? 'warn' : 'debug']({ backend: name }, '@tensorflow/tfjs-node is not installed');
    else log.warn({ backend: name, err }, 'tfjs backend unavailable, trying the next one');
    return false;
  }
}

async function init(preferred: BackendName | undefined, env: NodeJS.ProcessEnv, log: Logger): Promise<string> {
  const requested = preferred ?? fromEnv(env);
  const first = requested ?? 'tensorflow';
  const candidates = BACKEND_ORDER.slice(BACKEND_ORDER.indexOf(first));
  for (const name of candidates) {
    if (await attempt(name, log, name === requested)) {
      info = { name: tf.getBackend() };
      if (name === 'wasm') {
        info.simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT') as boolean;
        info.threads = getThreadsCount();
        installWasmGradients();
      }
      log.info({ ...info, requested: first }, `tfjs backend: ${info.name}`);
      return info.name;
    }
  }
  throw new FedStreamError('TRAINING_FAILED', `no TensorFlow.js backend could be initialised (tried ${candidates.join(', ')})`);
}

/**
 * Selects and initialises the TensorFlow.js backend; resolves to its name (`tensorflow`, `wasm` or `cpu`).
 *
 * The first choice is `preferred` (a command-line flag), else `FEDSTREAM_TFJS_BACKEND`, else `tensorflow`;
 * a choice that cannot load falls through to the next in {@link BACKEND_ORDER}. Idempotent: every call after
 * the first returns the first call's result, whatever it asks for.
 *
 * Under Node the wasm backend finds its `.wasm` files next to its own script
 * (node_modules/@tensorflow/tfjs-backend-wasm/dist), so `setWasmPaths` is not needed; it loads the SIMD build.
 * The threaded build is not an option: tfjs reports no thread support under Node (tfjs issue #3830) and forcing
 * it fails, because Node's `Worker` rejects the blob: URL tfjs gives it.
 */
export function initBackend(preferred?: BackendName, options: { logger?: Logger; env?: NodeJS.ProcessEnv } = {}): Promise<string> {
  const log = (options.logger ?? rootLogger()).child({ component: 'tfjs' });
  if (ready) {
    if (preferred && info && preferred !== info.name) log.debug({ preferred, active: info.name }, 'tfjs backend already chosen');
    return ready;
  }
  ready = init(preferred, options.env ?? process.env, log);
  ready.catch(() => { ready = undefined; });
  return ready;
}

/** The active backend, once {@link initBackend} has resolved. */
export function backendInfo(): BackendInfo | undefined {
  return info === undefined ? undefined : { ...info };
}

/** Throws unless {@link initBackend} has completed: tensors made before would land on whichever backend tfjs picked itself. */
export function assertBackendReady(): string {
  if (info === undefined) {
    throw new FedStreamError('INTERNAL', 'TensorFlow.js is not initialised: await initBackend() before building models');
  }
  return info.name;
}

/** Swaps the last two axes (a matrix transpose, batched). */
function swapLast(x: tf.Tensor): tf.Tensor {
  const perm = x.shape.map((_, i) => i);
  const r = perm.length;
  [perm[r - 2], perm[r - 1]] = [perm[r - 1]!, perm[r - 2]!];
  return tf.transpose(x, perm);
}

function matMulT(a: tf.Tensor, b: tf.Tensor, transposeA: boolean, transposeB: boolean): tf.Tensor {
  return tf.matMul(transposeA ? swapLast(a) : a, transposeB ? swapLast(b) : b);
}

/**
 * Gradient of a 2-D convolution with respect to its filter, from ops the wasm backend has (it has no
 * Conv2DBackpropFilter kernel, so tfjs cannot train a conv layer on wasm by itself). The filter gradient is a
 * correlation of the input with the output gradient: with the batch axis moved into the channel axis it is an
 * ordinary conv2d, `x` as [C, H, W, B] filtered by `dy` as [OH, OW, B, F] with dilation = the forward stride.
 */
export function conv2dFilterGradient(x: tf.Tensor4D, dy: tf.Tensor4D, filterShape: [number, number, number, number], strides: number | [number, number], pad: 'same' | 'valid' | number | tf.backend_util.ExplicitPadding, dimRoundingMode?: 'floor' | 'round' | 'ceil'): tf.Tensor4D {
  const info = tf.backend_util.computeConv2DInfo(x.shape, filterShape, strides, 1, pad, dimRoundingMode);
  const { top, bottom, left, right } = info.padInfo;
  const [kh, kw] = filterShape;
  return tf.tidy(() => {
    const xT = tf.transpose(x, [3, 1, 2, 0]) as tf.Tensor4D; // [C, H, W, B]
    const dyT = tf.transpose(dy, [1, 2, 0, 3]) as tf.Tensor4D; // [OH, OW, B, F]
    const padding: tf.backend_util.ExplicitPadding = [[0, 0], [top, bottom], [left, right], [0, 0]];
    const full = tf.conv2d(xT, dyT, 1, padding, 'NHWC', [info.strideHeight, info.strideWidth]); // [C, ≥KH, ≥KW, F]
    const g = full.shape[1] === kh && full.shape[2] === kw ? full : tf.slice(full, [0, 0, 0, 0], [-1, kh, kw, -1]);
    return tf.transpose(g, [1, 2, 0, 3]) as tf.Tensor4D; // [KH, KW, C, F]
  });
}

/**
 * Gradient of a stride-1 2-D convolution with respect to its input, as a conv2d (wasm's Conv2DBackpropInput
 * kernel is a plain loop, ~8× slower than XNNPACK on the MNIST CNN): `dy` correlated with the filter flipped in
 * space and with its channel axes swapped, padded by `kernel - 1 - pad` on each side.
 */
export function conv2dInputGradient(dy: tf.Tensor4D, filter: tf.Tensor4D, xShape: [number, number, number, number], pad: 'same' | 'valid' | number | tf.backend_util.ExplicitPadding, dimRoundingMode?: 'floor' | 'round' | 'ceil'): tf.Tensor4D {
  const info = tf.backend_util.computeConv2DInfo(xShape, filter.shape, 1, 1, pad, dimRoundingMode);
  const { top, bottom, left, right } = info.padInfo;
  const [kh, kw] = filter.shape;
  return tf.tidy(() => {
    const flipped = tf.transpose(tf.reverse(filter, [0, 1]), [0, 1, 3, 2]) as tf.Tensor4D; // [KH, KW, F, C]
    const padding: tf.backend_util.ExplicitPadding = [[0, 0], [kh - 1 - top, kh - 1 - bottom], [kw - 1 - left, kw - 1 - right], [0, 0]];
    return tf.conv2d(dy, flipped, 1, padding);
  });
}

let wasmGradients = false;

/**
 * Two gradient overrides for the wasm backend; the maths is tfjs' own, only the kernels it lands on differ:
 * - BatchMatMul: wasm runs a transposed-operand matmul in a plain loop instead of XNNPACK (2.6 ms against
 *   0.6 ms for [784×10]·[10×200]); transposing explicitly first makes MLP training about twice as fast.
 * - Conv2D: the filter gradient through {@link conv2dFilterGradient}, because wasm lacks Conv2DBackpropFilter;
 *   for stride 1 the input gradient through {@link conv2dInputGradient}, because wasm's is slow.
 */
function installWasmGradients(): void {
  if (wasmGradients) return;
  wasmGradients = true;
  tf.registerGradient({
    kernelName: tf.BatchMatMul,
    inputsToSave: ['a', 'b'],
    gradFunc: (dy, saved, attrs) => {
      const d = dy as tf.Tensor;
      const [a, b] = saved as [tf.Tensor, tf.Tensor];
      const { transposeA, transposeB } = attrs as unknown as tf.BatchMatMulAttrs;
      if (!transposeA && !transposeB) return { a: () => matMulT(d, b, false, true), b: () => matMulT(a, d, true, false) };
      if (!transposeA && transposeB) return { a: () => matMulT(d, b, false, false), b: () => matMulT(d, a, true, false) };
      if (transposeA && !transposeB) return { a: () => matMulT(b, d, false, true), b: () => matMulT(a, d, false, false) };
      return { a: () => matMulT(b, d, true, true), b: () => matMulT(d, a, true, true) };
    },
  });
  tf.registerGradient({
    kernelName: tf.Conv2D,
    inputsToSave: ['x', 'filter'],
    gradFunc: (dy, saved, attrs) => {
      const d = dy as tf.Tensor4D;
      const [x, filter] = saved as [tf.Tensor4D, tf.Tensor4D];
      const { dilations, strides, pad, dataFormat, dimRoundingMode } = attrs as unknown as tf.Conv2DAttrs;
      const dil = typeof dilations === 'number' ? [dilations, dilations] : dilations;
      if (dataFormat !== 'NHWC' || dil.some((v) => v !== 1)) {
        throw new Error(`conv2d gradient on wasm supports NHWC without dilation, got ${dataFormat}, dilations ${String(dilations)}`);
      }
      const unitStride = (typeof strides === 'number' ? [strides, strides] : strides).every((v) => v === 1);
      return {
        x: () => (unitStride ? conv2dInputGradient(d, filter, x.shape, pad, dimRoundingMode) : tf.conv2dTranspose(d, filter, x.shape, strides, pad, dimRoundingMode)),
        filter: () => conv2dFilterGradient(x, d, filter.shape, strides, pad, dimRoundingMode),
      };
    },
  });
}
