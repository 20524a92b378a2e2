/**
 * Local training on a pool of worker threads, behind the node SDK's {@link LocalTrainer} port.
 *
 * The demo runs every node in one process. Their protocol logic (FedNode: control, models, updates,
 * telemetry) stays on the main thread with the aggregator and the sink; only the CPU-bound part, the
 * tfjs training, moves to `size` worker threads (default: one per core), each with its own tfjs
 * engine. A job carries (manifest, nodeId, spec, weights, config); the worker loads the node's data
 * once and keeps it, trains, and transfers the new weights' buffers back.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { FedStreamError } from '../common/index.ts';
import type { Logger } from '../common/index.ts';
import type { Manifest } from '../config/index.ts';
import type { LocalTrainer, LocalTrainInput } from '../node/index.ts';
import type { TrainOutcome, TrainReply, TrainRequest } from './worker-protocol.ts';

export interface WorkerPoolOptions {
  /** Whose data the workers load (its `data` section). */
  manifest: Manifest;
  logger: Logger;
  /** Worker threads; default one per core (`os.availableParallelism()`). */
  size?: number;
  /** tfjs backend the workers ask for; default the usual order (FEDSTREAM_TFJS_BACKEND is inherited). */
  backend?: string;
}

/** A job: the node's round, as the {@link LocalTrainer} port gives it (the round config included). */
export type TrainInput = LocalTrainInput;

export interface WorkerTrainResult extends TrainOutcome {
  /** Index of the worker thread that ran the job. */
  worker: number;
}

export interface WorkerPoolStats {
  size: number;
  /** Jobs finished per worker. */
  jobs: number[];
  /** Time each worker spent training (its own measure), ms. */
  trainingMs: number[];
}

interface Job {
  request: Omit<TrainRequest, 'id'>;
  resolve: (r: WorkerTrainResult) => void;
  reject: (e: unknown) => void;
}

interface Slot {
  index: number;
  worker: Worker;
  ready: Promise<void>;
  job?: { id: number; job: Job };
  started: boolean;
  jobs: number;
  trainingMs: number;
}

/** From src/ a bootstrap registers tsx in the thread; from the built dist/ the compiled implementation loads directly. */
const WORKER_URL = import.meta.url.endsWith('.ts') ? new URL('./train-worker.mjs', import.meta.url) : new URL('./train-worker-impl.js', import.meta.url);

export class WorkerPoolTrainer {
  readonly size: number;
  private readonly slots: Slot[] = [];
  private readonly queue: Job[] = [];
  private nextId = 1;
  private closed = false;
  private readonly log: Logger;

  constructor(private readonly opts: WorkerPoolOptions) {
    this.size = Math.max(1, Math.floor(opts.size ?? availableParallelism()));
    this.log = opts.logger.child({ component: 'worker-pool' });
    for (let i = 0; i < this.size; i++) this.slots.push(this.spawn(i));
  }

  /** Resolves once every worker has loaded TypeScript and is listening; rejects with the first that failed. */
  async ready(): Promise<void> {
    await Promise.all(this.slots.map((s) => s.ready));
  }

  /** The {@link LocalTrainer} of one node: its jobs go to whichever worker is free. */
  trainerFor(nodeId: string, o: { flipLabels?: boolean } = {}): LocalTrainer {
    return { train: (input) => this.train(nodeId, input, this.opts.manifest, o.flipLabels ?? false) };
  }

  /**
   * Trains `nodeId` on its own data from `input.weights`; the weights are copied to the worker, never detached.
   * `manifest` (default: the pool's) says where the node's data comes from. `flipLabels`: train on labels y → C−1−y
   * (a label-flipping Byzantine node of `fedstream experiment robustness`, node/byzantine.ts).
   */
  train(nodeId: string, input: TrainInput, manifest: Manifest = this.opts.manifest, flipLabels = false): Promise<WorkerTrainResult> {
    if (this.closed) return Promise.reject(new FedStreamError('TRANSPORT_CLOSED', 'the training worker pool is closed'));
    return new Promise((resolve, reject) => {
      this.queue.push({
        request: {
          manifest,
          nodeId,
          spec: input.spec,
          weights: input.weights,
          config: input.config,
          seed: input.seed,
          ...(flipLabels ? { flipLabels } : {}),
          ...(this.opts.backend ? { backend: this.opts.backend } : {}),
        },
        resolve,
        reject,
      });
      this.dispatch();
    });
  }

  stats(): WorkerPoolStats {
    return { size: this.size, jobs: this.slots.map((s) => s.jobs), trainingMs: this.slots.map((s) => Math.round(s.trainingMs)) };
  }

  /** Terminates the workers; queued and running jobs reject. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const err = new FedStreamError('TRANSPORT_CLOSED', 'the training worker pool was closed');
    for (const job of this.queue.splice(0)) job.reject(err);
    await Promise.all(this.slots.map(async (s) => {
      s.job?.job.reject(err);
      s.job = undefined;
      await s.worker.terminate();
    }));
  }

  private spawn(index: number): Slot {
    // Inherit the parent's environment (FEDSTREAM_TFJS_BACKEND, log level) but not its stdin.
    const worker = new Worker(WORKER_URL, { stdin: false });
    let readyResolve!: () => void;
    let readyReject!: (e: unknown) => void;
    const ready = new Promise<void>((res, rej) => { readyResolve = res; readyReject = rej; });
    ready.catch(() => undefined);
    const slot: Slot = { index, worker, ready, started: false, jobs: 0, trainingMs: 0 };
    worker.on('message', (msg: TrainReply) => {
      if (msg.type === 'ready') {
        slot.started = true;
        readyResolve();
        return;
      }
      const current = slot.job;
      if (!current || current.id !== msg.id) return;
      slot.job = undefined;
      if (msg.type === 'result') {
        slot.jobs++;
        slot.trainingMs += msg.trainingMs;
        current.job.resolve({
          weights: msg.weights, numExamples: msg.numExamples, metrics: msg.metrics, trainingMs: msg.trainingMs, backend: msg.backend,
          steps: msg.steps, batchSize: msg.batchSize, worker: index,
        });
      } else {
        current.job.reject(new FedStreamError(msg.error.code, msg.error.message, { details: { ...msg.error.details, worker: index }, retriable: msg.error.retriable }));
      }
      this.dispatch();
    });
    worker.on('error', (err) => {
      this.log.error({ err, worker: index }, 'training worker failed');
      const e = new FedStreamError('TRAINING_FAILED', `training worker ${index} failed: ${err.message}`, { cause: err, details: { worker: index } });
      readyReject(e);
      slot.job?.job.reject(e);
      slot.job = undefined;
    });
    worker.on('exit', (code) => {
      if (this.closed) return;
      const lost = slot.job;
      slot.job = undefined;
      const e = new FedStreamError('TRAINING_FAILED', `training worker ${index} exited with code ${code}`, { details: { worker: index } });
      lost?.job.reject(e);
      if (!slot.started) {
        // It never came up (e.g. the TypeScript loader could not load): another would fail the same way.
        readyReject(e);
        this.closed = true;
        for (const job of this.queue.splice(0)) job.reject(e);
        return;
      }
      this.log.warn({ worker: index, code }, 'training worker exited; starting a new one');
      const fresh = this.spawn(index);
      fresh.jobs = slot.jobs;
      fresh.trainingMs = slot.trainingMs;
      this.slots[index] = fresh;
      this.dispatch();
    });
    return slot;
  }

  private dispatch(): void {
    for (const slot of this.slots) {
      if (this.queue.length === 0) return;
      if (slot.job) continue;
      const job = this.queue.shift()!;
      const id = this.nextId++;
      slot.job = { id, job };
      slot.worker.postMessage({ ...job.request, id } satisfies TrainRequest);
    }
  }
}
