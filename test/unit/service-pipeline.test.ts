import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/common/index.ts';
import { parseManifest } from '../../src/config/index.ts';
import { ephemeralParticipants } from '../../src/protocol/index.ts';
import { compose, runService, type ExitSignal, type RunnerProcess } from '../../src/service/index.ts';
import { MemoryCluster } from '../../src/transport/index.ts';
import { defaultCodec } from '../../src/codec/index.ts';

const logger = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');

/** A process that never signals and records exits (there must be none). */
const quietProcess = (): RunnerProcess & { exits: number[] } => ({
  exits: [] as number[],
  once: (_s: ExitSignal, _l: () => void) => undefined,
  removeListener: (_s: ExitSignal, _l: () => void) => undefined,
  exit(code: number) { this.exits.push(code); },
  stderr: { write: () => true },
});

describe('a pipeline composed by service/wiring and driven by the runner', () => {
  it('runs the aggregator and two nodes on one composition\'s memory log, reports health, and releases transports', async () => {
    const team = ephemeralParticipants(parseManifest({
      apiVersion: 'fedstream/v1',
      tenant: 'test',
      name: `wired-${Math.random().toString(36).slice(2, 8)}`,
      model: { inputShape: [784], seed: 3, layers: [{ type: 'dense', units: 16, activation: 'relu' }, { type: 'dense', units: 10, activation: 'softmax' }] },
      data: { source: 'mnist', nodes: 2, partition: 'iid', testExamples: 200, trainExamples: 400, seed: 5 },
      training: { epochs: 1, batchSize: 20, learningRate: 0.1 },
      rounds: { count: 2, targetUpdates: 2, minUpdates: 2, timeoutMs: 60_000 },
    }), ['node-1', 'node-2']);
    // Each participant's key comes from the composition's key source (the CLI's --key-file, the demo's ephemeral keys).
    const wiring = compose({ manifest: team.manifest, logger, signers: (id) => team.signerFor(id) });
    const proc = quietProcess();
    const aggregator = await wiring.aggregator({ evaluate: false });
    const nodes = await Promise.all(['node-1', 'node-2'].map((id) => wiring.node(id, { heartbeatMs: 200 })));
    expect(aggregator.health()).toMatchObject({ healthy: false, state: 'created' });

    const run = runService(aggregator, { logger, proc });
    const nodeRuns = nodes.map((n) => runService(n, { logger, proc }));
    const outcome = await run;
    expect(outcome).toEqual({ kind: 'done', result: { finalVersion: 2, rounds: 2, roundsRun: 2, versions: 3 } });
    for (const r of await Promise.all(nodeRuns)) expect(r.kind).toBe('done');
    expect(nodes.map((n) => n.health().state)).toEqual(['finished', 'finished']);
    expect(proc.exits).toEqual([]);
    // Each service closed its own transport when it stopped: the composition has nothing left to close but the log.
    await wiring.close();
  }, 60_000);

  it('continues a finished pipeline when rounds.count is raised (audited), and reports only rounds that ran', async () => {
    const team = ephemeralParticipants(parseManifest({
      apiVersion: 'fedstream/v1', tenant: 'test', name: `more-${Math.random().toString(36).slice(2, 8)}`,
      model: { inputShape: [784], seed: 3, layers: [{ type: 'dense', units: 10, activation: 'softmax' }] },
      data: { source: 'mnist', nodes: 2, partition: 'iid', testExamples: 100, trainExamples: 200, seed: 5 },
      training: { epochs: 1, batchSize: 20, learningRate: 0.1 },
      strategy: { name: 'fedadam', eta: 0.01 },
      rounds: { count: 2, targetUpdates: 2, minUpdates: 2, timeoutMs: 60_000 },
    }), ['node-1', 'node-2']);
    const memory = new MemoryCluster();
    const run = async (count: number, withNodes: boolean) => {
      const wiring = compose({ manifest: { ...team.manifest, rounds: { ...team.manifest.rounds, count } }, logger, memory, signers: (id) => team.signerFor(id) });
      const proc = quietProcess();
      const aggregator = await wiring.aggregator({ evaluate: false });
      const outcome = runService(aggregator, { logger, proc });
      // Nodes join once the aggregator has decided what comes next: a node that finds FINISH last on the log stops.
      while (aggregator.health().figures?.round === undefined && aggregator.health().state !== 'finished') await new Promise((r) => setTimeout(r, 20));
      const nodes = withNodes ? await Promise.all(['node-1', 'node-2'].map((id) => wiring.node(id, { heartbeatMs: 200 }))) : [];
      await Promise.all(nodes.map((n) => runService(n, { logger, proc })));
      const result = await outcome;
      await wiring.close();
      return result;
    };
    expect(await run(2, true)).toEqual({ kind: 'done', result: { finalVersion: 2, rounds: 2, roundsRun: 2, versions: 3 } });
    // The same count again: nothing to do, and no round claimed that did not run.
    expect(await run(2, false)).toEqual({ kind: 'done', result: { finalVersion: 2, rounds: 2, roundsRun: 0, versions: 3 } });
    // Raised to 4: rounds 3 and 4 run from version 2 (FedAdam's moments restored from it), then FINISH again.
    expect(await run(4, true)).toEqual({ kind: 'done', result: { finalVersion: 4, rounds: 4, roundsRun: 2, versions: 5 } });

    const audit = memory.topic(`test.${team.manifest.name}.audit`).partitions
      .flatMap((p) => p.records.filter((r) => !r.control && r.value).map((r) => defaultCodec().decode('AuditEvent', r.value!)));
    const continued = audit.filter((e) => e.action === 'PIPELINE_CONTINUED');
    expect(continued).toHaveLength(1);
    expect(continued[0]).toMatchObject({ round: 2, version: 2 });
    expect(continued[0]!.reason).toMatch(/rounds\.count raised to 4: continuing after round 2 from version 2/);
    expect(audit.filter((e) => e.action === 'PIPELINE_FINISHED').map((e) => e.round)).toEqual([2, 4]);
  }, 120_000);

  it('refuses to run a pipeline without a participants section, saying how to add keys or opt in to open enrolment', async () => {
    const m = parseManifest({
      apiVersion: 'fedstream/v1', tenant: 'test', name: 'nokeys',
      model: { inputShape: [4], layers: [{ type: 'dense', units: 2, activation: 'softmax' }] },
      data: { source: 'mnist', nodes: 1 },
      rounds: { count: 1, targetUpdates: 1, minUpdates: 1 },
    });
    const wiring = compose({ manifest: m, logger });
    for (const made of [wiring.aggregator({ evaluate: false }), wiring.node('node-1'), wiring.sink()]) {
      const err = await made.then(() => undefined, (e: unknown) => e as { code: string; path: string; message: string });
      expect(err).toMatchObject({ code: 'CONFIG_INVALID', path: 'participants' });
      expect(err!.message).toMatch(/fedstream keys generate.*keysDir.*enrolment: open/s);
    }
    await wiring.close();
  });
});
