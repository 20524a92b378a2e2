/**
 * Issue 14, item 2: a server optimizer's state (momentum, m_t, v_t) survives a crash. An aggregator that dies in the
 * middle of a run — after folding an update (`mid-round`), or after its strategy took the round's step in memory but
 * before the version's transaction committed (`before-commit`: the moments advanced, the log did not) — is replaced
 * by a new one with a fresh strategy object, as a restarted process would be; it restores the state of the latest
 * version in the log, reads the round's updates again, and publishes the same versions, byte for byte (weights and
 * strategy state), as a run that was never interrupted. The memory transport keeps Kafka's transactional semantics
 * (test/contract), so no broker is needed; test/integration/pipeline-recovery.test.ts does the same with SIGKILL.
 */
import { describe, expect, it } from 'vitest';
import { createAggregator } from '../../src/aggregator/index.ts';
import { packTensors, unpackTensors, type ModelVersionRecord } from '../../src/codec/index.ts';
import { createLogger } from '../../src/common/logger.ts';
import { parseManifest, type Manifest } from '../../src/config/manifest.ts';
import { mulberry32 } from '../../src/ml/index.ts';
import { ephemeralParticipants, type EphemeralParticipants } from '../../src/protocol/participants.ts';
import { pipelineTopics } from '../../src/protocol/topics.ts';
import { toRecords } from '../../src/protocol/wire.ts';
import { createMemoryTransport, MemoryCluster, type Transport } from '../../src/transport/index.ts';
import { readVersions } from '../support/pipeline-log.ts';

const logger = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');
const ROUNDS = 4;
const NODES = ['node-1', 'node-2'];

/** The pipeline, with in-memory Ed25519 keys for the aggregator and the nodes (signed records, as a real pipeline's). */
const pipelineFor = (name: string, strategy: Record<string, unknown>): EphemeralParticipants<Manifest> => ephemeralParticipants(parseManifest({
  apiVersion: 'fedstream/v1', tenant: 'test', name,
  model: { inputShape: [6], seed: 3, layers: [{ type: 'dense', units: 4, activation: 'relu' }, { type: 'dense', units: 3, activation: 'softmax' }] },
  data: { source: 'mnist', nodes: NODES.length, testExamples: 100, trainExamples: 200 },
  rounds: { count: ROUNDS, targetUpdates: NODES.length, minUpdates: NODES.length, timeoutMs: 60_000 },
  strategy,
}), NODES);

/** What a node sends for a round: its base version's weights moved by a step that depends on (node, round) and on the base. */
async function sendUpdate(t: Transport, team: EphemeralParticipants<Manifest>, round: number, node: number): Promise<void> {
  const m = team.manifest;
  const base = (await readVersions(t, m)).at(-1)!;
  expect(base.version).toBe(round - 1);
  const rand = mulberry32(round * 1000 + node);
  const weights = unpackTensors(base.tensors).map((w) => ({ ...w, values: Float32Array.from(w.values, (v) => v - 0.1 * v + 0.05 * (rand() - 0.3)) }));
  const p = t.producer();
  await p.connect();
  await p.send(toRecords(pipelineTopics(m).updates, 'ModelUpdate', {
    updateId: `u${round}-${node}`, tenant: m.tenant, pipeline: m.name, nodeId: NODES[node]!, round, baseVersion: base.version,
    numExamples: 10 + 7 * node + round, tensors: packTensors(weights), metrics: {}, trainingMs: 1, createdAt: Date.now(), sdkVersion: 'x', backend: 'x',
  }, NODES[node]!, m.topics.chunkSizeBytes, {}, team.signerFor(NODES[node]!)));
  await p.disconnect();
}

/** Resolves when the given version is published (onVersion runs after its transaction commits). */
function versionWaiter() {
  const waiters = new Map<number, () => void>();
  const seen = new Set<number>();
  return {
    onVersion: (v: ModelVersionRecord) => {
      seen.add(v.version);
      waiters.get(v.version)?.();
    },
    published: (version: number) => new Promise<void>((resolve) => (seen.has(version) ? resolve() : waiters.set(version, resolve))),
  };
}

type Fault = 'mid-round' | 'before-commit';

/** Runs the pipeline; with `crashAt`, the first aggregator dies there in round 3 and a second one takes over. */
async function run(strategy: Record<string, unknown>, crashAt?: Fault): Promise<ModelVersionRecord[]> {
  const team = pipelineFor(`opt-${crashAt ?? 'straight'}-${Math.random().toString(36).slice(2, 8)}`, strategy);
  const m = team.manifest;
  const signer = team.signerFor('aggregator');
  const cluster = new MemoryCluster();
  const t = createMemoryTransport({ cluster, logger });
  let w = versionWaiter();
  const fault = crashAt ? (point: string, round: number) => {
    if (point === crashAt && round === 3) throw new Error(`simulated kill -9 at ${point} in round ${round}`);
  } : undefined;
  const first = await createAggregator({ manifest: m, signer, transport: createMemoryTransport({ cluster, logger }), logger, evaluate: false, onVersion: w.onVersion, fault });
  await first.start();
  let live = first;
  for (let round = 1; round <= ROUNDS; round++) {
    await w.published(round - 1);
    for (let node = 0; node < NODES.length; node++) await sendUpdate(t, team, round, node);
    if (crashAt && round === 3) {
      await expect(first.done).rejects.toThrow(/simulated kill -9/);
      await first.stop();
      // What the log holds: nothing of round 3 committed.
      expect((await readVersions(t, m)).map((v) => v.version)).toEqual([0, 1, 2]);
      w = versionWaiter();
      live = await createAggregator({ manifest: m, signer, transport: createMemoryTransport({ cluster, logger }), logger, evaluate: false, onVersion: w.onVersion });
      await live.start();
    }
  }
  await live.done;
  await live.stop();
  return readVersions(t, m);
}

const digest = (vs: ModelVersionRecord[]) => vs.map((v) => ({ version: v.version, round: Number(v.round), strategy: v.strategy, weights: v.weightsSha256, state: v.strategyState?.toString('base64') ?? null }));

describe('a server optimizer restarted mid-run publishes the same versions as an uninterrupted run', () => {
  it.each([
    { strategy: { name: 'fedadam', eta: 0.05 }, crashAt: 'before-commit' as const },
    { strategy: { name: 'fedadam', eta: 0.05 }, crashAt: 'mid-round' as const },
    { strategy: { name: 'fedyogi' }, crashAt: 'before-commit' as const },
    { strategy: { name: 'fedadagrad', eta: 0.05 }, crashAt: 'before-commit' as const },
    { strategy: { name: 'fedavgm', serverLearningRate: 0.9, serverMomentum: 0.9 }, crashAt: 'before-commit' as const },
  ])('$strategy.name, crash at $crashAt of round 3', async ({ strategy, crashAt }) => {
    const straight = await run(strategy);
    const restarted = await run(strategy, crashAt);
    expect(straight.map((v) => v.version)).toEqual([0, 1, 2, 3, 4]);
    // Every version after the first carries the optimizer's state, and it changes round to round.
    expect(straight[0]!.strategyState).toBeNull();
    const states = straight.slice(1).map((v) => v.strategyState?.toString('base64'));
    expect(states.every((s) => s !== undefined && s.length > 0)).toBe(true);
    expect(new Set(states).size).toBe(ROUNDS);
    expect(digest(restarted)).toEqual(digest(straight));
  }, 120_000);
});
