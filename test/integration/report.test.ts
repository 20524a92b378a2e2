// The compliance and training reports on chdb, over a pipeline history that went through the real
// sink: lineage of version N, the sha256 chain checked against the models topic (and a tampered
// version caught), the retention in force, and the training report's plots and escaping.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applySchema, complianceReport, createAnalyticsClient, retentionVariables, Sink, trainingReport, type AnalyticsClient } from '../../src/analytics/index.ts';
import { FedStreamError } from '../../src/common/errors.ts';
import { createLogger } from '../../src/common/logger.ts';
import type { Manifest } from '../../src/config/manifest.ts';
import { ensureTopics } from '../../src/protocol/topics.ts';
import { createMemoryTransport, MemoryCluster } from '../../src/transport/memory/index.ts';
import type { Transport } from '../../src/transport/types.ts';
import { produceHistory, testManifest, type History } from './sink-fixtures.ts';

const logger = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');
let root: string;
let ch: AnalyticsClient;
let m: Manifest;
let transport: Transport;
let h: History;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'fedstream-report-'));
  ch = await createAnalyticsClient({ path: join(root, 'clickhouse'), logger });
  m = testManifest('acme', `r_${randomUUID().slice(0, 8)}`);
  await applySchema(ch, { logger, variables: retentionVariables(m.retention) });
  transport = createMemoryTransport({ cluster: new MemoryCluster(), logger });
  const admin = transport.admin();
  await ensureTopics(admin, m);
  await admin.close();
  const producer = transport.producer();
  await producer.connect();
  h = await produceHistory(producer, m, { nodes: 3, rounds: 3, extraHeartbeats: 5, garbage: 1 });
  await producer.disconnect();
  const sink = new Sink({ manifest: m, transport, analytics: ch, logger, batchRows: 100, batchMs: 50 });
  await sink.start();
  await sink.untilFinished();
  await sink.stop();
});

afterAll(async () => {
  await transport?.close();
  await ch?.close();
  if (root) rmSync(root, { recursive: true, force: true });
});

function selfContained(html: string): void {
  expect(html.startsWith('<!DOCTYPE html>')).toBe(true);
  expect(html).not.toMatch(/<script\b/i);
  expect(html).not.toMatch(/\b(?:src|href)="(?:https?:)?\/\//i);
  expect(html).not.toMatch(/<link\b/i);
}

describe('compliance report', () => {
  it('says who may speak for the pipeline: its enrolment mode and key ids, and open enrolment as such', async () => {
    const r = await complianceReport({ analytics: ch, manifest: m, version: 1, now: new Date('2030-01-01T00:00:00Z') });
    expect(r.participants.enrolment).toBe('registry');
    expect(r.participants.keys.filter((k) => k.role === 'aggregator')).toHaveLength(1);
    expect(r.markdown).toContain('Enrolment: registry: an update counts only when signed by the key listed for its node');
    expect(r.markdown).toContain(r.participants.keys[0]!.keyId);
    expect(r.markdown).not.toMatch(/BEGIN (PUBLIC|PRIVATE) KEY/);
    const open = await complianceReport({ analytics: ch, manifest: { ...m, participants: { enrolment: 'open', aggregator: 'aggregator', keys: [] } }, version: 1 });
    expect(open.participants.enrolment).toBe('open');
    expect(open.markdown).toContain('OPEN ENROLMENT: any node may join, and updates are not verified against a registry');
    expect(open.document.meta).toContainEqual({ key: 'Enrolment', value: 'OPEN (any node may join; updates not verified)' });
  });

  it('answers which nodes and updates shaped version N, with the examples they counted', async () => {
    const r = await complianceReport({ analytics: ch, manifest: m, version: 2, transport, now: new Date('2030-01-01T00:00:00Z') });
    const expectedNodes = [...new Set([...h.contributorsOf.get(1)!, ...h.contributorsOf.get(2)!])].sort();
    expect(r.version).toBe(2);
    expect(r.nodes.map((n) => n.node_id)).toEqual(expectedNodes);
    // node-3 was rejected in round 2: it shaped version 2 only through version 1.
    expect(r.nodes.find((n) => n.node_id === 'node-3')).toMatchObject({ versions: ['1'], updates: '1', examples: '30' });
    expect(new Set(r.lineage.map((l) => l.version))).toEqual(new Set(['2', '1', '0']));
    const v1 = h.versions[1]!;
    for (const c of v1.contributors) {
      expect(r.lineage).toContainEqual(expect.objectContaining({ version: '1', node_id: c.nodeId, update_id: c.updateId, num_examples: String(c.numExamples) }));
    }
    expect(r.markdown).toContain('**Version 2** was shaped by the data of **3 nodes** (node-1, node-2, node-3)');
    for (const c of v1.contributors) expect(r.markdown).toContain(c.updateId);
    expect(r.markdown).toContain('Generated:** 2030-01-01 00:00:00 UTC');
    // Round 3's decisions came after version 2: not in its audit trail.
    expect(r.markdown).toMatch(/\| UPDATE_REJECTED \| 2 \| — \| node-3 \|/);
    expect(r.markdown).not.toMatch(/\| UPDATE_ACCEPTED \| 3 \|/);
    selfContained(r.html);
    expect(r.html).toContain('<h2>Audit trail</h2>');
  });

  it('checks the sha256 chain against the models topic: every version OK', async () => {
    const r = await complianceReport({ analytics: ch, manifest: m, transport });
    expect(r.version).toBe(3);
    expect(r.chain.map((c) => [c.version, c.status, c.topic, c.auditOk, c.parentOk])).toEqual([
      [0, 'OK', 'OK', true, true], [1, 'OK', 'OK', true, true], [2, 'OK', 'OK', true, true], [3, 'OK', 'OK', true, true],
    ]);
    expect(r.chain.map((c) => c.weightsSha256)).toEqual(h.versions.map((v) => v.weightsSha256));
    expect(r.markdown).toContain('**OK:** the sha256 chain of versions 0 to 3 is intact, and every hash matches the weights on the models topic.');
  });

  it('states the retention in force from the manifest and the tables\' TTLs', async () => {
    const r = await complianceReport({ analytics: ch, manifest: m });
    const byTable = Object.fromEntries(r.retention.map((e) => [e.table, e]));
    expect(byTable.telemetry_events).toMatchObject({ days: 14, expectedDays: 14 });
    expect(byTable.updates).toMatchObject({ days: 90, expectedDays: 90 });
    expect(byTable.audit_log).toMatchObject({ days: 400, expectedDays: 400 });
    expect(byTable.model_versions).toMatchObject({ days: 400, expectedDays: 400 });
    expect(byTable.node_health_1m).toMatchObject({ days: 90, expectedDays: 90 });
    expect(byTable.telemetry_events!.ttl).toMatch(/event_time/);
    expect(r.markdown).toContain('Manifest: telemetry 14 days, updates 90 days, audit 400 days');
    expect(r.markdown).toContain('**OK:** every table keeps its rows as long as the manifest asks.');
    // Without a transport the weights are not re-hashed, only compared with the audit log.
    expect(r.chain.every((c) => c.topic === undefined && c.status === 'OK')).toBe(true);
    expect(r.markdown).toContain('| not checked | OK |');
  });

  it('refuses a version that is not in ClickHouse', async () => {
    const err = await complianceReport({ analytics: ch, manifest: m, version: 42 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FedStreamError);
    expect((err as FedStreamError).message).toMatch(/version 42 .* is not in ClickHouse \(versions 0 to 3\)/);
  });

  it('detects a tampered version as MISMATCH', async () => {
    // Someone rewrites version 2's hash in ClickHouse: a newer row with the same key wins under FINAL.
    const rs = await ch.client.query({ query: 'SELECT * FROM model_versions FINAL WHERE pipeline = {p:String} AND version = 2', query_params: { p: m.name }, format: 'JSONEachRow' });
    const [row] = await rs.json<Record<string, unknown>>();
    const forged = 'f'.repeat(64);
    await ch.client.insert({ table: 'model_versions', values: [{ ...row, weights_sha256: forged, inserted_at: undefined, created_at: row!.created_at }], format: 'JSONEachRow' });

    const r = await complianceReport({ analytics: ch, manifest: m, transport });
    const v2 = r.chain.find((c) => c.version === 2)!;
    expect(v2).toMatchObject({ status: 'MISMATCH', topic: 'MISMATCH', auditOk: false, weightsSha256: forged, recomputedSha256: h.versions[2]!.weightsSha256 });
    expect(v2.problems.join('; ')).toContain(`the weights on the models topic hash to ${h.versions[2]!.weightsSha256}`);
    expect(r.chain.filter((c) => c.status === 'OK').map((c) => c.version)).toEqual([0, 1, 3]);
    expect(r.markdown).toContain('**ATTENTION:** the sha256 chain has problems at version 2');
    expect(r.html).toContain('<td class="status-MISMATCH">MISMATCH</td>');
  });
});

describe('training report', () => {
  it('draws convergence and participation, and escapes what nodes send', async () => {
    // A node id with markup in it, as a hostile node could send.
    const evil = '<img src=x onerror="alert(1)">&';
    await ch.client.insert({
      table: 'updates',
      values: [{ tenant: m.tenant, pipeline: m.name, update_id: 'evil-1', node_id: evil, round: 3, base_version: 2, num_examples: 5, num_params: 420, payload_bytes: 2000, metrics: { loss: 1 }, training_ms: 1, created_at: Date.now() - 1000, status: 'rejected' }],
      format: 'JSONEachRow',
    });
    const r = await trainingReport({ analytics: ch, manifest: m, now: new Date('2030-01-01T00:00:00Z') });
    selfContained(r.html);
    const svgs = r.html.match(/<svg\b[\s\S]*?<\/svg>/g) ?? [];
    expect(svgs.length).toBe(6);
    for (const title of ['Accuracy by version', 'Loss by version', 'Participation by node and round', 'Updates per node', 'Examples contributed per node', 'Updates per round']) {
      expect(r.html).toContain(`>${title}</title>`);
    }
    // Accuracy of versions 1..3 drawn as points (version 0 has none).
    const accuracy = svgs[0]!;
    expect(accuracy.match(/<circle /g)?.length).toBe(6); // evaluation and training, versions 1..3
    expect(accuracy).toContain('evaluation accuracy: model version 3, accuracy 0.8');
    expect(r.html).not.toContain(evil);
    expect(r.html).toContain(escapeHtml(evil));
    expect(r.convergence.map((c) => c.version)).toEqual(['0', '1', '2', '3']);
    expect(r.participation.map((p) => p.node_id)).toEqual(expect.arrayContaining(['node-1', 'node-2', 'node-3', evil]));
    expect(r.markdown).toContain('# Training report: acme/' + m.name);
    expect(r.markdown).toMatch(/\| 3 \| 3 \| 3 \| 60 \| 0 \| 80\.0% \|/);
    expect(r.markdown).toContain('| node-3 | 3 | 3 | 2 | 1 | 2 | 60 |');
    expect(r.markdown).toContain('## Lineage');
    expect(r.markdown).toContain('node-1: 10 (16.7%), node-2: 20 (33.3%), node-3: 30 (50.0%)');
  });
});

function escapeHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}
