/**
 * A participant with write access to the control and models topics (no ACLs on the development broker) forges a
 * FINISH and a ModelVersion whose sha256 is correct, into a running pipeline of real processes on the real broker
 * (issue 12). The nodes refuse both and keep following the real rounds, the aggregator is killed and its successor
 * refuses both on recovery (audited, dead-lettered) and resumes, and the pipeline finishes all its rounds.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { packTensors, unpackTensors, weightsSha256, type ModelVersionRecord } from '../../src/codec/index.ts';
import { loadManifest } from '../../src/config/manifest.ts';
import { loadSigner, participantRegistry, pipelineTopics, readToEnd, toRecords } from '../../src/protocol/index.ts';
import { createKafkaTransport } from '../../src/transport/kafka/index.ts';
import { deferCleanup, kafkaBrokers } from './helpers.ts';
import { expectExit, fedstream, quietLogger, readAudit, readVersions, smallManifest, waitForLog, writeManifest } from './pipeline-helpers.ts';

const NODE_IDS = ['node-1', 'node-2', 'node-3'];

describe('forged control and versions on the real broker', () => {
  it('a forged FINISH and a forged version (correct sha256) change nothing: every round runs, a restarted aggregator resumes', async () => {
    const brokers = kafkaBrokers();
    const m = smallManifest({ rounds: { count: 3, targetUpdates: 3, minUpdates: 3, timeoutMs: 120_000 } });
    const { file, dir } = writeManifest(m);
    const registry = participantRegistry(loadManifest(file));
    const node = (id: string) => fedstream(['node', '-p', file, '--kafka', brokers, '--node-id', id, '--heartbeat-ms', '1000'], { dir, name: id });
    const first = fedstream(['aggregator', '-p', file, '--kafka', brokers, '--no-evaluate'], { dir, name: 'aggregator-1' });
    // Round 1 needs all three nodes: with node-3 held back, it stays open while the forgeries land.
    const [n1, n2] = [node('node-1'), node('node-2')];
    await waitForLog(n1, /"round":1,"updateId".*update published/);
    await waitForLog(n2, /"round":1,"updateId".*update published/);

    const t = createKafkaTransport({ brokers: [brokers], logger: quietLogger });
    deferCleanup(() => t.close());
    const topics = pipelineTopics(m);
    const [v0] = await readVersions(t, m);
    const evil = unpackTensors(v0!.tensors).map((x) => ({ ...x, values: x.values.map(() => 0.25) }));
    const forged: ModelVersionRecord = { ...v0!, version: 1, parentVersion: 0, round: 1, tensors: packTensors(evil), weightsSha256: weightsSha256(evil), createdAt: Date.now() };
    const participant = t.producer();
    await participant.connect();
    deferCleanup(() => participant.disconnect());
    const now = Date.now();
    // FINISH unsigned; version 1 signed with a participant's own (node) key; version 1 again without a signature.
    await participant.send(toRecords(topics.control, 'RoundControl', {
      tenant: m.tenant, pipeline: m.name, round: 1, baseVersion: 0, kind: 'FINISH', config: {}, selectedNodes: [], deadline: now, minUpdates: 1, targetUpdates: 3, createdAt: now,
    }, 'round-1', m.topics.chunkSizeBytes));
    await participant.send(toRecords(topics.models, 'ModelVersion', forged, 'v1', m.topics.chunkSizeBytes, {}, loadSigner(path.join(dir, 'keys', 'node-1.key'))));
    await participant.send(toRecords(topics.models, 'ModelVersion', forged, 'v1', m.topics.chunkSizeBytes));
    await waitForLog(n1, /record refused, not acted on: FINISH of round 1/);
    await waitForLog(n2, /record refused, not acted on: model version 1/);

    // The aggregator dies with round 1 open; its successor must neither finish at version 0 nor adopt the forged version.
    first.kill('SIGKILL');
    await expectExit(first, 'SIGKILL', 'first aggregator');
    const second = fedstream(['aggregator', '-p', file, '--kafka', brokers, '--no-evaluate'], { dir, name: 'aggregator-2' });
    await waitForLog(second, /recovery refused a record/);
    const n3 = node('node-3');
    await expectExit(second, 0, 'second aggregator');
    for (const [n, id] of [[n1, 'node-1'], [n2, 'node-2'], [n3, 'node-3']] as const) await expectExit(n, 0, id);
    expect(second.logTail(200)).not.toMatch(/pipeline already finished/);

    const real = await readVersions(t, m, registry);
    expect(real.map((v) => [v.version, v.parentVersion])).toEqual([[0, -1], [1, 0], [2, 1], [3, 2]]);
    expect(real[1]!.weightsSha256).not.toBe(forged.weightsSha256);
    for (const v of real.slice(1)) expect(v.contributors.map((c) => c.nodeId).sort()).toEqual(NODE_IDS);
    expect((await readVersions(t, m)).length).toBe(real.length + 2);
    const audit = await readAudit(t, m);
    const refused = audit.filter((e) => e.action === 'MESSAGE_DEAD_LETTERED' && e.details.refusedBy === 'recovery');
    expect(refused.map((e) => e.details.code).sort()).toEqual(['unsigned', 'unsigned', 'wrong_signer']);
    expect(audit.filter((e) => e.action === 'UPDATE_ACCEPTED')).toHaveLength(9);
    expect(audit.at(-1)!.action).toBe('PIPELINE_FINISHED');
    const dead: string[] = [];
    await readToEnd(t, topics['dead-letter'], (msg) => { dead.push(msg.headers['fedstream-dlq-code']!.toString()); });
    expect(dead.sort()).toEqual(['unsigned', 'unsigned', 'wrong_signer']);
  });
});
