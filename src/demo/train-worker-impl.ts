/**
 * The body of a training worker thread: receives {@link TrainRequest}s from {@link WorkerPoolTrainer},
 * trains with the tfjs trainer on the node's own data (loaded once per node and kept), and posts the
 * new weights back, transferring their buffers instead of copying them.
 */
import { parentPort } from 'node:worker_threads';
import type { Weights } from '../codec/index.ts';
import { toFedStreamError } from '../common/index.ts';
import { createLogger } from '../common/index.ts';
import type { Manifest } from '../config/index.ts';
import { loadMnist, loadTfRuntime, nodeDataset, nodeIndex, partitionMnist, type BackendName, type Dataset } from '../ml/index.ts';
import { trainOptionsOf } from '../node/index.ts';
import type { TrainReply, TrainRequest } from './worker-protocol.ts';

const port = parentPort;
if (!port) throw new Error('train-worker-impl.ts runs in a worker thread (see worker-trainer.ts)');

const { initBackend, Trainer } = await loadTfRuntime();
const logger = createLogger(process.env.FEDSTREAM_LOG_LEVEL ?? 'warn');
// The worker trains one job at a time; nothing else shares its event loop, so it never needs to yield.
const trainer = new Trainer({ yieldEveryMs: 60_000 });
/** MNIST partitions per data section (all nodes at once: one split serves every node this worker meets). */
const partitions = new Map<string, Dataset[]>();
/** Datasets per (data section, node). */
const datasets = new Map<string, Dataset>();

function dataFor(manifest: Manifest, nodeId: string): Dataset {
  const key = JSON.stringify([manifest.data, manifest.model.inputShape]);
  const cached = datasets.get(`${key}\u0000${nodeId}`);
  if (cached) return cached;
  let data: Dataset;
  const d = manifest.data;
  if (d.source === 'mnist') {
    let parts = partitions.get(key);
    if (!parts) {
      // nodeDataset() checks the model's input shape against MNIST and names the field when it does not fit.
      nodeDataset(manifest, nodeId);
      const { train } = loadMnist({ seed: d.seed, testExamples: d.testExamples, ...(d.trainExamples !== undefined ? { trainExamples: d.trainExamples } : {}) });
      parts = partitionMnist(train, { nodes: d.nodes, partition: d.partition, shardsPerNode: d.shardsPerNode, seed: d.seed });
      partitions.set(key, parts);
    }
    data = parts[nodeIndex(nodeId, d.nodes)]!;
  } else {
    data = nodeDataset(manifest, nodeId);
  }
  datasets.set(`${key}\u0000${nodeId}`, data);
  return data;
}

/** The same examples with each label y replaced by C − 1 − y (C classes), cached per dataset. */
const flips = new WeakMap<Dataset, Dataset>();
function flipped(d: Dataset): Dataset {
  let f = flips.get(d);
  if (!f) {
    const labels = d.labels.map((y) => d.numClasses - 1 - y);
    f = { ...d, labels };
    flips.set(d, f);
  }
  return f;
}

/** Owns each tensor's buffer outright, so that it can be transferred. */
function transferable(weights: Weights): { weights: Weights; buffers: ArrayBuffer[] } {
  const out = weights.map((w) => {
    const whole = w.values.byteOffset === 0 && w.values.byteLength === w.values.buffer.byteLength && w.values.buffer instanceof ArrayBuffer;
    return { ...w, values: whole ? w.values : new Float32Array(w.values) };
  });
  return { weights: out, buffers: out.map((w) => w.values.buffer as ArrayBuffer) };
}

async function handle(req: TrainRequest): Promise<void> {
  try {
    const backend = await initBackend(req.backend as BackendName | undefined, { logger });
    const own = dataFor(req.manifest, req.nodeId);
    const data = req.flipLabels ? flipped(own) : own;
    const r = await trainer.train({
      spec: req.spec,
      weights: req.weights,
      data,
      ...trainOptionsOf(req.config),
      seed: req.seed,
    });
    const { weights, buffers } = transferable(r.weights);
    const reply: TrainReply = {
      type: 'result', id: req.id, weights, numExamples: r.numExamples, metrics: { ...r.metrics }, trainingMs: r.trainingMs, backend,
      steps: r.steps, batchSize: r.batchSize,
    };
    port!.postMessage(reply, buffers);
  } catch (err) {
    const e = toFedStreamError(err, 'TRAINING_FAILED', 'training in a worker thread failed');
    const reply: TrainReply = { type: 'error', id: req.id, error: { code: e.code, message: e.message, details: safeDetails(e.details), retriable: e.retriable } };
    port!.postMessage(reply);
  }
}

function safeDetails(details: Record<string, unknown>): Record<string, unknown> {
  try {
    return structuredClone(details);
  } catch {
    return {};
  }
}

// One job at a time, in arrival order (the pool sends a worker one job at a time anyway).
let queue: Promise<void> = Promise.resolve();
port.on('message', (req: TrainRequest) => {
  queue = queue.then(() => handle(req));
});
port.postMessage({ type: 'ready' } satisfies TrainReply);
