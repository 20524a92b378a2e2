/**
 * Simulated nodes for the decision and scale benchmarks: producers that send precomputed ModelUpdate records
 * (no training) to the real broker, and a read_committed observer of the models topic.
 */
import { randomUUID } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { packTensors, type ModelUpdateRecord, type TensorRecord } from '../src/codec/index.ts';
import { createLogger } from '../src/common/logger.ts';
import { parseManifest, type Manifest } from '../src/config/manifest.ts';
import { pipelineTopics, topicSpecs } from '../src/protocol/topics.ts';
import { PayloadReader, decode, toRecords } from '../src/protocol/wire.ts';
import { createKafkaTransport } from '../src/transport/kafka/index.ts';
import type { Consumer, Producer, Transport } from '../src/transport/types.ts';
import type { AggChildConfig } from './agg-child.ts';
import { nextMessage, spawnTsChild } from './lib.ts';

export const quiet = createLogger(process.env.BENCH_LOG_LEVEL ?? 'warn');

/** A dense layer of `params` parameters in all: kernel [rows, 200] and bias [200] (200,000 = 999 × 200 + 200). */
export function shapesFor(params: number): { name: string; shape: number[] }[] {
  const units = 200;
  const rows = Math.max(1, Math.round((params - units) / units));
  return [{ name: 'dense/kernel', shape: [rows, units] }, { name: 'dense/bias', shape: [units] }];
}

export function benchManifest(prefix: string, params: number, nodes: number, rounds: number): Manifest {
  const rows = shapesFor(params)[0]!.shape[0]!;
  return parseManifest({
    apiVersion: 'fedstream/v1',
    tenant: 'bench',
    name: `${prefix}-${randomUUID().slice(0, 8)}`,
    model: { inputShape: [rows], layers: [{ type: 'dense', units: 200 }] },
    data: { source: 'mnist', nodes: Math.min(nodes, 1000) },
    strategy: { rounds, targetUpdates: nodes, minUpdates: nodes, roundTimeoutMs: 600_000 },
    // Simulated nodes send unsigned updates: these figures measure aggregation without signature checks.
    participants: { enrolment: 'open' },
  });
}

/** A few distinct update tensors (small values around the zero base); node j uses variant j mod the count. */
export function updateVariants(params: number, count = 4): TensorRecord[][] {
  return Array.from({ length: count }, (_, v) => {
    let s = (v + 1) * 2654435761;
    const weights = shapesFor(params).map((t) => {
      const n = t.shape.reduce((a, b) => a * b, 1);
      const values = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
        values[i] = ((s >>> 8) / 16777216 - 0.5) * 1e-3;
      }
      return { name: t.name, shape: t.shape, values };
    });
    return packTensors(weights);
  });
}

export function nodeId(j: number): string {
  return `sim-${String(j).padStart(4, '0')}`;
}

/** The Kafka records of node j's update for a round. */
export function updateRecords(m: Manifest, j: number, round: number, baseVersion: number, tensors: TensorRecord[]) {
  const rec: ModelUpdateRecord = {
    updateId: randomUUID(), tenant: m.tenant, pipeline: m.name, nodeId: nodeId(j), round, baseVersion, numExamples: 100 + (j % 50),
    tensors, metrics: { loss: 0.5 }, trainingMs: 0, createdAt: Date.now(), sdkVersion: 'bench', backend: 'none',
  };
  return toRecords(pipelineTopics(m).updates, 'ModelUpdate', rec, nodeId(j), m.topics.chunkSizeBytes);
}

export function kafka(brokers: string, clientId: string): Transport {
  return createKafkaTransport({ brokers: brokers.split(','), clientId, logger: quiet, maxWaitTimeMs: 500 });
}

export async function connectProducers(t: Transport, count: number): Promise<Producer[]> {
  const ps = Array.from({ length: count }, () => t.producer({ idempotent: true }));
  for (let i = 0; i < ps.length; i += 20) await Promise.all(ps.slice(i, i + 20).map((p) => p.connect()));
  return ps;
}

/** Receipt time (performance.now) of each ModelVersion's last chunk, as a read_committed consumer sees it. */
export class VersionObserver {
  readonly seen = new Map<number, number>();
  private readonly waiters = new Map<number, (t: number) => void>();
  private consumer: Consumer | undefined;

  constructor(private readonly t: Transport, private readonly m: Manifest) {}

  async start(): Promise<void> {
    const reader = new PayloadReader(this.m.limits);
    this.consumer = this.t.consumer({ groupId: `bench-observer-${randomUUID()}`, readCommitted: true, fromBeginning: true });
    await this.consumer.connect();
    await this.consumer.subscribe([pipelineTopics(this.m).models]);
    await this.consumer.run({
      eachBatch: async (batch, ctx) => {
        for (const msg of batch.messages) {
          ctx.resolveOffset(msg.offset);
          const at = performance.now();
          const got = reader.accept(msg);
          if (!got.payload) continue;
          const v = Number(decode('ModelVersion', got.payload.bytes).version);
          this.seen.set(v, at);
          this.waiters.get(v)?.(at);
          this.waiters.delete(v);
        }
      },
    });
  }

  /** When version v became readable (performance.now clock). */
  waitFor(v: number, timeoutMs = 120_000): Promise<number> {
    const at = this.seen.get(v);
    if (at !== undefined) return Promise.resolve(at);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`model version ${v} not seen within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.set(v, (t) => {
        clearTimeout(timer);
        resolve(t);
      });
    });
  }

  async stop(): Promise<void> {
    await this.consumer?.disconnect();
  }
}

/** Starts bench/agg-child.ts for a manifest and waits until it has published version 0. */
export async function startAggregatorChild(brokers: string, m: Manifest, params: number, opts: { reportFolds: boolean; nodeArgs?: string[]; strategy?: Record<string, unknown> }): Promise<ChildProcess> {
  const config: AggChildConfig = { brokers, manifest: m, shapes: shapesFor(params), reportFolds: opts.reportFolds, ...(opts.strategy ? { strategy: opts.strategy } : {}) };
  const child = spawnTsChild('bench/agg-child.ts', [JSON.stringify(config)], {}, opts.nodeArgs ?? []);
  await nextMessage<{ type: string }>(child, (msg) => msg.type === 'ready', 120_000, 'aggregator start');
  return child;
}

export async function deleteTopics(t: Transport, m: Manifest): Promise<void> {
  const admin = t.admin();
  try {
    await admin.deleteTopics(topicSpecs(m).map((s) => s.topic));
  } catch {
    // best effort: the benchmark broker is the benchmark's own
  } finally {
    await admin.close();
  }
}
