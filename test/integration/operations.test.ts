/**
 * Issue 15, run as a platform team would, on the real broker with separate processes: a sink on the embedded
 * ClickHouse, an aggregator and three nodes; `fedstream status --json` while a round waits; `report` and `health`
 * from other processes while the sink holds the engine; `model export` of the final version, loaded back with
 * `tf.loadLayersModel` (its predictions equal the aggregator's evaluation model's) and read with Hugging Face's own
 * `safetensors` (Python, pinned in scripts/checkers.mjs).
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Tensor } from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { safetensorsPython } from '../../scripts/checkers.mjs';
import { ENDPOINT_FILE } from '../../src/analytics/index.ts';
import { unpackTensors } from '../../src/codec/index.ts';
import { loadTfRuntime, testDataset } from '../../src/ml/index.ts';
import type { PipelineStatus } from '../../src/service/index.ts';
import { createKafkaTransport } from '../../src/transport/kafka/index.ts';
import { deferCleanup, kafkaBrokers } from './helpers.ts';
import { expectExit, fedstream, quietLogger, readAudit, readVersions, smallManifest, writeManifest } from './pipeline-helpers.ts';
import { decode, pipelineTopics, readToEnd } from '../../src/protocol/index.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const run = promisify(execFile);

/** `fedstream <args>` to its end: exit code, stdout and stderr (never throws on a non-zero exit). */
async function cli(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [path.join(ROOT, 'bin/fedstream.js'), ...args], { cwd: ROOT, env: { ...process.env, FEDSTREAM_LOG_LEVEL: 'warn', ...env }, maxBuffer: 64 << 20, timeout: 240_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

async function until<T>(what: string, budgetMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const end = Date.now() + budgetMs;
  let last: unknown;
  for (;;) {
    try {
      const got = await probe();
      if (got !== undefined) return got;
    } catch (err) {
      last = err;
    }
    if (Date.now() > end) throw new Error(`${what}: not within ${budgetMs} ms${last ? ` (last error: ${String(last)})` : ''}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

describe('operating a pipeline: status, export, reports while the sink runs', () => {
  it('status shows a waiting round, the model exports loadable and equal to the evaluated one, report and health query the running sink', async () => {
    const brokers = kafkaBrokers();
    const env = { FEDSTREAM_KAFKA: brokers };
    // Target 4 with 3 nodes: round 1 waits for its deadline with 3 of 4 updates, which status must show.
    const m = smallManifest({
      rounds: { count: 1, targetUpdates: 4, minUpdates: 2, timeoutMs: 25_000 },
      analytics: { path: 'ch', database: 'fedstream' },
    });
    const { file, dir } = writeManifest(m);
    // Relative to the manifest, not to the working directory the processes run in (the repository root).
    const chDir = path.join(dir, 'ch');

    const sink = fedstream(['sink', '-p', file, '--batch-ms', '200', '--progress-ms', '0'], { dir, env, name: 'sink' });
    await until('the sink serves its embedded ClickHouse', 120_000, async () => (existsSync(path.join(chDir, ENDPOINT_FILE)) ? true : undefined));
    const agg = fedstream(['aggregator', '-p', file], { dir, env, name: 'aggregator' });
    const nodeIds = ['node-1', 'node-2', 'node-3'];
    const nodes = nodeIds.map((id) => fedstream(['node', '-p', file, '--node-id', id, '--heartbeat-ms', '1000'], { dir, env, name: id }));

    const waiting = await until('status shows round 1 with 3 updates received', 120_000, async () => {
      const r = await cli(['status', '-p', file, '--json'], env);
      if (r.code !== 0) throw new Error(r.stderr);
      const s = JSON.parse(r.stdout) as PipelineStatus;
      return s.round?.number === 1 && s.round.received === 3 && s.nodes.alive.length === 3 ? s : undefined;
    });
    expect(waiting.state).toBe('running');
    expect(waiting.round).toMatchObject({ kind: 'START', baseVersion: 0, targetUpdates: 4, minUpdates: 2, received: 3, receivedFrom: nodeIds });
    expect(waiting.round!.deadlineInMs).toBeLessThanOrEqual(25_000);
    expect(waiting.nodes.alive.map((a) => a.nodeId)).toEqual(nodeIds);
    expect(waiting.nodes.missing).toEqual([]);
    expect(waiting.lastVersion).toMatchObject({ version: 0, round: 0, strategy: 'initial' });

    // While the sink holds the embedded engine: other processes query it through the sink's endpoint.
    const health = await cli(['health', '-p', file], env);
    expect(health.code, health.stderr).toBe(0);
    expect(health.stdout).toMatch(/^clickhouse ok {3}ClickHouse .* at http:\/\/127\.0\.0\.1:\d+, database fedstream$/m);

    await expectExit(agg, 0, 'aggregator');
    for (const [i, n] of nodes.entries()) await expectExit(n, 0, nodeIds[i]!);
    const t = createKafkaTransport({ brokers: [brokers], logger: quietLogger });
    deferCleanup(() => t.close());
    const versions = await readVersions(t, m);
    const last = versions.at(-1)!;
    expect(last.version).toBe(1);

    const report = await until('the training report sees both versions', 120_000, async () => {
      const r = await cli(['report', 'training', '-p', file], env);
      if (r.code !== 0) throw new Error(r.stderr);
      return r.stdout.includes('2 model versions over 1 round ') ? r : undefined;
    });
    expect(report.stdout).toContain('(served by process');
    const typo = await cli(['report', 'training', '-p', file, '--tenant', 'no-such-tenant'], env);
    expect(typo.code).toBe(1);
    expect(typo.stderr).toContain(`[ANALYTICS_NO_DATA]: no data for pipeline no-such-tenant/${m.name} in database fedstream of the embedded ClickHouse at ${chDir}`);
    expect(typo.stderr).toContain(`${m.tenant}/${m.name} (2 versions)`);

    const done = await cli(['status', '-p', file, '--json'], env);
    const after = JSON.parse(done.stdout) as PipelineStatus;
    expect(after.state).toBe('finished');
    expect(after.lastVersion).toMatchObject({ version: 1, round: 1, evalAccuracy: last.metrics.eval_accuracy });

    // The model out: tfjs and safetensors, with the lineage.
    const out = path.join(dir, 'export');
    const exported = await cli(['model', 'export', '-p', file, '--out', out], env);
    expect(exported.code, exported.stderr).toBe(0);
    expect(exported.stdout).toContain(`exported version 1 (round 1, fedavg, ${last.contributors.length} updates`);
    const lineage = JSON.parse(readFileSync(path.join(out, 'lineage.json'), 'utf8'));
    expect(lineage).toMatchObject({ version: 1, parentVersion: 0, round: 1, strategy: 'fedavg', weightsSha256: last.weightsSha256 });
    expect(lineage.ancestors.map((a: { version: number }) => a.version)).toEqual([0]);
    expect(lineage.contributors.map((c: { nodeId: string }) => c.nodeId).sort()).toEqual(last.contributors.map((c) => c.nodeId).sort());
    for (const name of ['model.json', 'weights.bin', 'model.safetensors']) {
      expect(lineage.files[name].sha256).toBe(createHash('sha256').update(readFileSync(path.join(out, name))).digest('hex'));
    }

    // Loaded with tf.loadLayersModel, it predicts what the aggregator's evaluation model (the version's weights in
    // buildModel) predicts, and scores the accuracy the aggregator published.
    const tfr = await loadTfRuntime();
    await tfr.initBackend();
    const { tf } = tfr;
    const loaded = await tf.loadLayersModel(tfr.fileModelHandler(path.join(out, 'model.json')));
    const reference = tfr.buildModel(m.model);
    tfr.setWeights(reference, unpackTensors(last.tensors));
    const test = testDataset(m)!;
    const xs = tf.tensor2d(test.xs, [test.n, test.features]);
    const got = (loaded.predict(xs) as Tensor).dataSync();
    const want = (reference.predict(xs) as Tensor).dataSync();
    expect(Buffer.from(got.buffer)).toEqual(Buffer.from(want.buffer));
    let correct = 0;
    for (let i = 0; i < test.n; i++) {
      const row = Array.from(got.subarray(i * 10, i * 10 + 10));
      if (row.indexOf(Math.max(...row)) === test.labels[i]) correct++;
    }
    expect(correct / test.n).toBeCloseTo(last.metrics.eval_accuracy!, 10);
    xs.dispose();
    loaded.dispose();
    reference.dispose();

    // Hugging Face's safetensors reads the same float32 values, shapes and metadata.
    const python = safetensorsPython();
    const script = path.join(dir, 'read.py');
    writeFileSync(script, [
      'import json, sys',
      'from safetensors import safe_open',
      'out = {}',
      "with safe_open(sys.argv[1], framework='np') as f:",
      "    out['metadata'] = f.metadata()",
      "    out['tensors'] = {k: {'shape': list(f.get_tensor(k).shape), 'dtype': str(f.get_tensor(k).dtype), 'values': f.get_tensor(k).ravel().astype('float64').tolist()} for k in f.keys()}",
      'print(json.dumps(out))',
    ].join('\n'));
    const py = JSON.parse((await run(python, [script, path.join(out, 'model.safetensors')], { maxBuffer: 64 << 20 })).stdout) as {
      metadata: Record<string, string>; tensors: Record<string, { shape: number[]; dtype: string; values: number[] }>;
    };
    expect(py.metadata).toMatchObject({ 'fedstream.version': '1', 'fedstream.weightsSha256': last.weightsSha256, 'fedstream.strategy': 'fedavg' });
    const weights = unpackTensors(last.tensors);
    expect(Object.keys(py.tensors).sort()).toEqual(weights.map((w) => w.name).sort());
    for (const w of weights) {
      expect(py.tensors[w.name]!.shape).toEqual(w.shape);
      expect(py.tensors[w.name]!.dtype).toBe('float32');
      expect(Float32Array.from(py.tensors[w.name]!.values)).toEqual(w.values);
    }

    sink.kill('SIGTERM');
    await expectExit(sink, 0, 'sink');
    expect(existsSync(path.join(chDir, ENDPOINT_FILE))).toBe(false);
  }, 600_000);

  it('with --target-alive-nodes, rounds of a pipeline sized for 10 updates close when the 3 live nodes have answered', async () => {
    const brokers = kafkaBrokers();
    const env = { FEDSTREAM_KAFKA: brokers };
    // A deadline far beyond the test's budget: only a target sized to the alive nodes lets the rounds close.
    const m = smallManifest({ rounds: { count: 2, targetUpdates: 10, minUpdates: 2, timeoutMs: 600_000 } });
    const { file, dir } = writeManifest(m);
    expect((await cli(['topics', '-p', file], env)).code).toBe(0);
    const nodeIds = ['node-1', 'node-2', 'node-3'];
    const nodes = nodeIds.map((id) => fedstream(['node', '-p', file, '--node-id', id, '--heartbeat-ms', '1000'], { dir, env, name: id }));
    await until('status shows the 3 nodes alive', 120_000, async () => {
      const r = await cli(['status', '-p', file, '--json'], env);
      if (r.code !== 0) throw new Error(r.stderr);
      const s = JSON.parse(r.stdout) as PipelineStatus;
      return s.state === 'not-started' && s.nodes.alive.length === 3 ? s : undefined;
    });
    const agg = fedstream(['aggregator', '-p', file, '--target-alive-nodes'], { dir, env, name: 'aggregator' });
    await expectExit(agg, 0, 'aggregator');
    for (const [i, n] of nodes.entries()) await expectExit(n, 0, nodeIds[i]!);
    const t = createKafkaTransport({ brokers: [brokers], logger: quietLogger });
    deferCleanup(() => t.close());
    const starts: { round: number; targetUpdates: number; minUpdates: number }[] = [];
    await readToEnd(t, pipelineTopics(m).control, (msg) => {
      const c = decode('RoundControl', msg.value!);
      if (c.kind === 'START') starts.push({ round: Number(c.round), targetUpdates: c.targetUpdates, minUpdates: c.minUpdates });
    });
    expect(starts).toEqual([{ round: 1, targetUpdates: 3, minUpdates: 2 }, { round: 2, targetUpdates: 3, minUpdates: 2 }]);
    const closed = (await readAudit(t, m)).filter((e) => e.action === 'ROUND_CLOSED');
    expect(closed.map((e) => e.reason)).toEqual(['target reached', 'target reached']);
  }, 600_000);
});
