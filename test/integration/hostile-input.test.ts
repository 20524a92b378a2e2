/**
 * Hostile input on the real broker (shared/cases/hostile/chunk-count-bomb): one chunk declaring 4,294,967,295 chunks
 * and 1,025 never-completed chunk sets written into a pipeline's `updates` topic. The aggregator survives, audits
 * each of them, commits past them and finishes its rounds; an aggregator killed after reading them and started
 * again does not die on them either. Memory is asserted by the updates reader's own counters.
 *
 * The dangling sets beyond limits.maxPendingPayloads are evicted on arrival; the rest hold the committed offset
 * back until they expire (limits.maxPendingAgeMs, short here: the pipeline's own updates are not chunked), which a
 * round's close checks, so the last round commits past all of them.
 */
import { describe, expect, it } from 'vitest';
import { createAggregator } from '../../src/aggregator/index.ts';
import { CHUNK_HEADERS } from '../../src/codec/index.ts';
import type { Manifest } from '../../src/config/manifest.ts';
import { createNode } from '../../src/node/index.ts';
import { ensureTopics, pipelineTopics } from '../../src/protocol/index.ts';
import { createKafkaTransport } from '../../src/transport/kafka/index.ts';
import type { ProducerRecord, Transport } from '../../src/transport/index.ts';
import { connectedProducer, deferCleanup, kafkaBrokers } from './helpers.ts';
import { expectExit, fedstream, quietLogger, readAudit, readVersions, smallManifest, writeManifest } from './pipeline-helpers.ts';

const NODE_IDS = ['node-1', 'node-2', 'node-3'];
const DANGLING = 1025;

/** The bomb, then DANGLING small chunk sets whose second chunk never comes: ~100 KB in all. */
function hostileRecords(m: Manifest): ProducerRecord[] {
  const topic = pipelineTopics(m).updates;
  const chunk = (id: string, count: string, size: string): ProducerRecord => ({
    topic, key: 'node-x', value: Buffer.alloc(64, 'x'),
    headers: { [CHUNK_HEADERS.id]: id, [CHUNK_HEADERS.index]: '0', [CHUNK_HEADERS.count]: count, [CHUNK_HEADERS.sha256]: 'a'.repeat(64), [CHUNK_HEADERS.size]: size },
  });
  return [chunk('bomb', '4294967295', '100'), ...Array.from({ length: DANGLING }, (_, i) => chunk(`f${i + 1}`, '2', '2000'))];
}

function kafka(): Transport {
  const t = createKafkaTransport({ brokers: [kafkaBrokers()], logger: quietLogger });
  deferCleanup(() => t.close());
  return t;
}

async function committedAndEnd(t: Transport, m: Manifest): Promise<{ committed: string | undefined; end: string }> {
  const admin = t.admin();
  try {
    const topic = pipelineTopics(m).updates;
    const committed = await admin.fetchCommittedOffsets(`${m.tenant}.${m.name}.aggregator`, topic);
    const [ends] = await admin.fetchTopicOffsets(topic);
    return { committed: committed.find((c) => c.partition === 0)?.offset, end: ends!.high };
  } finally {
    await admin.close();
  }
}

/** The hostile records' rejections in a committed audit trail: the bomb refused, every dangling set dropped. */
async function expectAudited(t: Transport, m: Manifest): Promise<void> {
  const rejected = (await readAudit(t, m)).filter((e) => e.action === 'UPDATE_REJECTED');
  expect(rejected.filter((e) => /fedstream-chunk-count is 4294967295/.test(e.reason ?? ''))).toHaveLength(1);
  const dropped = rejected.filter((e) => /payload f\d+ (evicted|expired) incomplete/.test(e.reason ?? ''));
  expect(new Set(dropped.map((e) => e.details.sourceOffset)).size).toBe(DANGLING);
  expect(rejected.every((e) => e.details.code === 'undecodable')).toBe(true);
}

describe('hostile chunked input on the real broker', () => {
  it('the chunk bomb and 1,025 dangling chunk sets in a running pipeline: the aggregator survives, commits past them and finishes', async () => {
    const t = kafka();
    // In-process services without key files: open enrolment (the chunk limits hold whoever wrote the chunks).
    const m = smallManifest({ rounds: { count: 2, targetUpdates: 3, minUpdates: 3, timeoutMs: 120_000 }, limits: { maxPendingAgeMs: 100 }, participants: { enrolment: 'open' } });
    const agg = await createAggregator({ manifest: m, transport: t, logger: quietLogger, evaluate: false });
    deferCleanup(() => agg.stop());
    await agg.start();
    const producer = await connectedProducer(t);
    await producer.send(hostileRecords(m));

    const nodes = await Promise.all(NODE_IDS.map((nodeId) => createNode({ manifest: m, transport: kafka(), nodeId, logger: quietLogger, heartbeatMs: 1000 })));
    for (const n of nodes) {
      deferCleanup(() => n.stop());
      await n.start();
    }
    const summary = await agg.done;
    await Promise.all(nodes.map((n) => n.done));
    expect(summary.finalVersion).toBe(2);

    // Bounded by the updates reader's own counters, not by RSS.
    const figures = agg.health().figures!;
    expect(figures.peakBufferedChunkBytes).toBeLessThanOrEqual(m.limits.maxPendingBytes);
    expect(figures.peakBufferedChunkBytes).toBeLessThanOrEqual(m.limits.maxPendingPayloads * 64);
    expect(figures.pendingPayloads).toBe(0);
    expect(figures.droppedPayloads).toBe(DANGLING);
    expect(figures.refusedChunks).toBe(1);

    const versions = await readVersions(t, m);
    expect(versions.map((v) => v.version)).toEqual([0, 1, 2]);
    for (const v of versions.slice(1)) expect(v.contributors.map((c) => c.nodeId).sort()).toEqual(NODE_IDS);
    await expectAudited(t, m);
    const { committed, end } = await committedAndEnd(t, m);
    expect(committed).toBe(end);
  });

  it('an aggregator killed after reading them and started again does not die on them, and finishes', async () => {
    const brokers = kafkaBrokers();
    const t = kafka();
    const m = smallManifest({ rounds: { count: 2, targetUpdates: 3, minUpdates: 3, timeoutMs: 120_000 }, limits: { maxPendingAgeMs: 100 } });
    // The hostile records are there before any aggregator: every incarnation reads them from the start.
    const admin = t.admin();
    try {
      await ensureTopics(admin, m);
    } finally {
      await admin.close();
    }
    const producer = await connectedProducer(t);
    await producer.send(hostileRecords(m));

    const { file, dir } = writeManifest(m);
    const first = fedstream(['aggregator', '-p', file, '--kafka', brokers], { dir, name: 'aggregator-1', env: { FEDSTREAM_FAULT: 'kill:mid-round:1' } });
    const nodes = NODE_IDS.map((id) => fedstream(['node', '-p', file, '--kafka', brokers, '--node-id', id, '--heartbeat-ms', '1000'], { dir, name: id }));
    await expectExit(first, 'SIGKILL', 'first aggregator (killed mid-round 1, after the hostile records)');
    const before = await committedAndEnd(t, m);
    expect(before.committed === undefined || BigInt(before.committed) <= 0n).toBe(true);

    const second = fedstream(['aggregator', '-p', file, '--kafka', brokers], { dir, name: 'aggregator-2' });
    await expectExit(second, 0, 'second aggregator');
    for (const [i, n] of nodes.entries()) await expectExit(n, 0, NODE_IDS[i]!);

    const versions = await readVersions(t, m);
    expect(versions.map((v) => v.version)).toEqual([0, 1, 2]);
    await expectAudited(t, m);
    const after = await committedAndEnd(t, m);
    expect(after.committed).toBe(after.end);
  });
});
