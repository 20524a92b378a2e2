/**
 * The chaos run (issue 13, Deliver 2): one pipeline of real processes — the aggregator, five nodes and the sink into
 * embedded ClickHouse (chdb) — on a Kafka broker of its own, through a seeded schedule of faults (faults.ts), then
 * checked against an uninterrupted run of the same seed (verify.ts). docs/reliability.md describes it.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createLogger } from '../../src/common/logger.ts';
import type { Manifest } from '../../src/config/manifest.ts';
import type { ModelVersionRecord } from '../../src/codec/index.ts';
import { createAggregator } from '../../src/aggregator/index.ts';
import { createNode } from '../../src/node/index.ts';
import { ephemeralParticipants } from '../../src/protocol/index.ts';
import { createKafkaTransport } from '../../src/transport/kafka/index.ts';
import { createMemoryTransport, MemoryCluster } from '../../src/transport/memory/index.ts';
import { readVersions } from '../support/pipeline-log.ts';
import { inject, planFaults } from './faults.ts';
import { chaosManifest, Supervisor, writePipeline } from './pipeline.ts';
import { startBroker } from './processes.ts';
import { verify, type Verdict } from './verify.ts';

export interface ChaosOptions {
  seed: number;
  faults: number;
  /** Default 5. */
  nodes?: number;
  /** One progress line. */
  say?: (line: string) => void;
  /** Keep the work directory (logs, chdb data, broker data) even when the run passes. */
  keep?: boolean;
}

export interface ChaosResult {
  seed: number;
  faults: number;
  rounds: number;
  verdict: Verdict;
  wallMs: number;
  /** `N faults injected: versions equal, 0 lost, 0 counted twice` (or what differed). */
  summary: string;
  ok: boolean;
  workDir: string;
}

const quiet = createLogger(process.env.CHAOS_LOG_LEVEL ?? 'silent');

/** The same pipeline, uninterrupted, in this process on the in-memory transport. */
async function referenceRun(plain: Manifest, nodeIds: string[]): Promise<ModelVersionRecord[]> {
  const team = ephemeralParticipants(plain, nodeIds);
  const m = team.manifest;
  const cluster = new MemoryCluster();
  const t = createMemoryTransport({ cluster, logger: quiet });
  const agg = await createAggregator({ manifest: m, transport: t, logger: quiet, evaluate: false, signer: team.signerFor('aggregator') });
  await agg.start();
  const nodes = await Promise.all(nodeIds.map((nodeId) => createNode({ manifest: m, transport: createMemoryTransport({ cluster, logger: quiet }), nodeId, logger: quiet, signer: team.signerFor(nodeId) })));
  for (const n of nodes) await n.start();
  await agg.done;
  await Promise.all(nodes.map((n) => n.done));
  await Promise.all(nodes.map((n) => n.stop()));
  await agg.stop();
  return readVersions(t, m);
}

export async function runChaos(o: ChaosOptions): Promise<ChaosResult> {
  const t0 = Date.now();
  const say = o.say ?? (() => undefined);
  const nodeIds = Array.from({ length: o.nodes ?? 5 }, (_, i) => `node-${i + 1}`);
  // At least one round per fault (each waits for a round the previous one did not see); faults that do not stall
  // the rounds (the sink, ClickHouse) let one or two pass: 1.5 rounds a fault were measured, two are planned.
  const rounds = 2 * o.faults + 3;
  const name = `chaos-${o.seed}-${Date.now().toString(36)}`.slice(0, 40);
  const spec = { name, nodes: nodeIds.length, rounds, seed: o.seed % 1_000_000 };
  const dir = mkdtempSync(path.join(tmpdir(), 'fedstream-chaos-'));
  say(`seed ${o.seed}: ${o.faults} faults, ${rounds} rounds, aggregator + ${nodeIds.length} nodes + sink (work dir ${dir})`);

  const reference = await referenceRun(chaosManifest({ ...spec, reference: true }), nodeIds);
  say(`uninterrupted run (in process): ${reference.length} versions, final weights sha256 ${reference.at(-1)?.weightsSha256.slice(0, 16)}…`);

  const broker = await startBroker(path.join(dir, 'kafka'));
  const m = chaosManifest(spec);
  const { file, chdbPath } = writePipeline(m, dir, nodeIds);
  const sup = new Supervisor({ dir, file, brokers: broker.brokers, nodeIds });
  let ok = false;
  try {
    sup.startAll();
    const plan = planFaults(o.seed, o.faults, nodeIds);
    let last = 0;
    for (const f of plan) {
      last = await sup.waitRoundAfter(last, 300_000);
      if (sup.finished()) throw new Error(`the pipeline finished after ${f.index} of ${o.faults} faults (${rounds} rounds were too few)`);
      await new Promise((r) => setTimeout(r, f.delayMs));
      const what = await inject(f, { sup, broker, chdbPath, say });
      say(`[${String(f.index + 1).padStart(String(o.faults).length)}/${o.faults}] ${f.kind.padEnd(30)} ${what}`);
      last = sup.round();
    }
    say(`all ${o.faults} faults injected; waiting for the pipeline to finish (round ${sup.round()} of ${rounds})`);
    await sup.waitAllDone(600_000);

    const published = sup.history.filter((p) => p.name.startsWith('node-'))
      .flatMap((p) => [...readFileSync(p.logFile, 'utf8').matchAll(/"event":"update.published"[^\n]*"updateId":"([^"]+)"/g)].map((x) => x[1]!));
    const transport = createKafkaTransport({ brokers: [broker.brokers], logger: quiet });
    let verdict: Verdict;
    try {
      verdict = await verify({ transport, manifest: m, nodeIds, reference, publishedUpdateIds: published, chdbPath, logger: quiet });
    } finally {
      await transport.close();
    }
    ok = verdict.versionsEqual && verdict.lost === 0 && verdict.countedTwice === 0 && verdict.problems.length === 0;
    const summary = `${o.faults} faults injected: versions ${verdict.versionsEqual ? 'equal' : 'DIFFER'}, ${verdict.lost} lost, ${verdict.countedTwice} counted twice`;
    return { seed: o.seed, faults: o.faults, rounds, verdict, wallMs: Date.now() - t0, summary, ok, workDir: dir };
  } finally {
    await sup.stopAll();
    await broker.clean().catch(() => undefined);
    if (ok && !o.keep) rmSync(dir, { recursive: true, force: true });
  }
}
