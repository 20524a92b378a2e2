/** Who is alive (protocol/heartbeats.ts): the nodes' HEARTBEATs read from `aliveWindowMs` ago, on the in-memory transport. */
import { describe, expect, it } from 'vitest';
import { parseManifest } from '../../src/config/manifest.ts';
import { HeartbeatFollower, naturalCompare, pipelineTopics, readHeartbeats, toRecords } from '../../src/protocol/index.ts';
import type { TelemetryEventRecord } from '../../src/codec/index.ts';
import { createMemoryTransport } from '../../src/transport/index.ts';
import { waitFor } from '../../src/common/retry.ts';
import { createLogger } from '../../src/common/logger.ts';

const m = parseManifest({
  apiVersion: 'fedstream/v1', tenant: 't', name: 'p',
  model: { inputShape: [1], layers: [{ type: 'dense', units: 1 }] }, data: { source: 'mnist', nodes: 3 },
  rounds: { count: 1, targetUpdates: 3, minUpdates: 1 },
});
const topic = pipelineTopics(m).telemetry;
const event = (nodeId: string, eventTime: number, kind: TelemetryEventRecord['kind'] = 'HEARTBEAT', pipeline = 'p'): TelemetryEventRecord => ({
  tenant: 't', pipeline, nodeId, kind, round: null, eventTime, metrics: { roundsTrained: 2 }, labels: { state: 'idle' }, message: null,
});

async function setup() {
  const t = createMemoryTransport();
  const admin = t.admin();
  await admin.createTopics([{ topic, numPartitions: 2 }]);
  await admin.close();
  const producer = t.producer();
  await producer.connect();
  const send = (e: TelemetryEventRecord, timestamp?: number) => producer.send(toRecords(topic, 'TelemetryEvent', e, e.nodeId, 1024 * 1024).map((r) => ({ ...r, ...(timestamp === undefined ? {} : { timestamp }) })));
  return { t, send, producer };
}

describe('heartbeats', () => {
  it('counts a node alive while its last heartbeat is within the window, ignoring other kinds and pipelines', async () => {
    const { t, send } = await setup();
    const now = Date.now();
    await send(event('node-10', now - 2_000));
    await send(event('node-2', now - 60_000)); // older than the window
    await send(event('node-2', now - 1_000));
    await send(event('node-3', now - 40_000));
    await send(event('node-4', now - 1_000, 'TRAINING'));
    await send(event('node-5', now - 1_000, 'HEARTBEAT', 'other'));
    const book = await readHeartbeats(t, m, topic, 15_000, now);
    expect(book.alive(now, 15_000)).toEqual(['node-2', 'node-10']);
    expect(book.all().map((h) => h.nodeId).sort(naturalCompare)).toEqual(['node-2', 'node-3', 'node-10']);
    expect(book.all().find((h) => h.nodeId === 'node-2')).toEqual({ nodeId: 'node-2', at: now - 1_000, state: 'idle', roundsTrained: 2 });
    await t.close();
  });

  it('reads only from the offsets of the window\'s start (Kafka offsets by time), not the whole topic', async () => {
    const { t, send } = await setup();
    const now = Date.now();
    // Written an hour ago by the broker's clock: before the window, never read even though its event time is fresh.
    await send(event('node-1', now), now - 3_600_000);
    await send(event('node-2', now), now - 1_000);
    const book = await readHeartbeats(t, m, topic, 15_000, now);
    expect(book.alive(now, 15_000)).toEqual(['node-2']);
    await t.close();
  });

  it('a follower keeps the latest heartbeat per node as they arrive', async () => {
    const { t, send } = await setup();
    await send(event('node-1', Date.now()));
    const f = new HeartbeatFollower(t, m, topic, 15_000, createLogger('silent'));
    await f.start(5_000);
    expect(f.book.alive(Date.now(), 15_000)).toEqual(['node-1']);
    await send(event('node-3', Date.now()));
    await waitFor(() => f.book.alive(Date.now(), 15_000).length === 2, { timeoutMs: 5_000 });
    expect(f.book.alive(Date.now(), 15_000)).toEqual(['node-1', 'node-3']);
    await f.stop();
    await t.close();
  });
});
