/**
 * Section 2: decision latency. 100 simulated nodes on the real broker, a 200k-parameter model, the real
 * Aggregator (FedAvg) in its own process. Per round: the time from the producer's acknowledgement of the last
 * update the round needs to the moment a read_committed consumer receives the new ModelVersion's last chunk,
 * both on this process's clock.
 *
 * Paced rounds (the figure): the first N-1 updates are sent and folded, then the last one is sent alone, as
 * when nodes finish training at different times. Burst rounds (reported beside it): all N updates at once, so
 * the latency also holds the aggregator's backlog of updates still to fold.
 */
import type { ChildProcess } from 'node:child_process';
import { nextMessage, percentile, progress, round } from './lib.ts';
import { VersionObserver, benchManifest, connectProducers, deleteTopics, kafka, startAggregatorChild, updateRecords, updateVariants } from './sim.ts';

export interface DecisionFigures {
  nodes: number;
  params: number;
  rounds: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  samplesMs: number[];
  /**
   * The same rounds timed from the moment the last update's send() was called: an upper bound, since the append
   * happens between the call and its acknowledgement (which this process may notice late when it is busy).
   */
  fromSendP50Ms: number;
  fromSendP99Ms: number;
  burstRounds: number;
  burstP50Ms: number;
  burstMaxMs: number;
  /** Median over the paced rounds of where the time went (ms), from the aggregator process's timers. */
  breakdownMedianMs: Record<string, number>;
  /** Records sent one by one in each round's transaction. */
  sendsPerRound: number;
  method: string;
}

interface Breakdown {
  lastFoldAt: number;
  finishMs: number;
  lastFoldToFinishMs: number;
  buildRecordsMs: number;
  sends: number;
  sendMs: number;
  sendOffsetsMs: number;
  commitMs: number;
  commitEndAt: number;
}

interface VersionMsg { type: 'version'; version: number; round: number; breakdown: Breakdown }
interface FoldMsg { type: 'fold'; round: number; count: number }

export async function benchDecision(brokers: string, o: { nodes: number; params: number; rounds: number; burstRounds: number; warmup?: number; cpuProfileDir?: string }): Promise<DecisionFigures> {
  const warmup = o.warmup ?? 2;
  const total = warmup + o.rounds + o.burstRounds;
  const m = benchManifest('decision', o.params, o.nodes, total);
  const t = kafka(brokers, 'bench-decision');
  const label = 'decision';
  progress(`${label}: ${o.nodes} nodes, ${o.params} parameters, ${warmup} warm-up + ${o.rounds} paced + ${o.burstRounds} burst rounds`);
  const nodeArgs = o.cpuProfileDir ? ['--cpu-prof', `--cpu-prof-dir=${o.cpuProfileDir}`] : [];
  const child: ChildProcess = await startAggregatorChild(brokers, m, o.params, { reportFolds: true, nodeArgs });
  const folds = new Map<number, number>();
  const versions = new Map<number, VersionMsg>();
  child.on('message', (msg: FoldMsg | VersionMsg | { type: string }) => {
    if (msg.type === 'fold') folds.set((msg as FoldMsg).round, (msg as FoldMsg).count);
    if (msg.type === 'version') versions.set((msg as VersionMsg).version, msg as VersionMsg);
  });
  const observer = new VersionObserver(t, m);
  await observer.start();
  const producers = await connectProducers(t, o.nodes);
  const variants = updateVariants(o.params);
  const paced: number[] = [];
  const pacedFromSend: number[] = [];
  const burst: number[] = [];
  const breakdowns: Record<string, number>[] = [];
  try {
    for (let r = 1; r <= total; r++) {
      await observer.waitFor(r - 1);
      const recs = producers.map((_, j) => updateRecords(m, j, r, r - 1, variants[j % variants.length]!));
      const isBurst = r > warmup + o.rounds;
      let ackAt: number;
      let sendAt = NaN;
      if (isBurst) {
        const acks = await Promise.all(producers.map(async (p, j) => {
          await p.send(recs[j]!);
          return performance.now();
        }));
        ackAt = Math.max(...acks);
      } else {
        await Promise.all(producers.slice(0, -1).map((p, j) => p.send(recs[j]!)));
        if ((folds.get(r) ?? 0) < o.nodes - 1) {
          await nextMessage<FoldMsg>(child, (msg) => msg.type === 'fold' && msg.round === r && msg.count >= o.nodes - 1, 120_000, `round ${r}: folding ${o.nodes - 1} updates`);
        }
        sendAt = performance.now();
        await producers.at(-1)!.send(recs.at(-1)!);
        ackAt = performance.now();
      }
      const seenAt = await observer.waitFor(r);
      const ms = seenAt - ackAt;
      if (r > warmup) (isBurst ? burst : paced).push(ms);
      if (r > warmup && !isBurst) pacedFromSend.push(seenAt - sendAt);
      const v = versions.get(r) ?? (await nextMessage<VersionMsg>(child, (msg) => msg.type === 'version' && msg.version === r, 10_000, `round ${r}: breakdown`));
      const b = v.breakdown;
      const ackEpoch = performance.timeOrigin + ackAt;
      const row = {
        ackToLastFold: b.lastFoldAt - ackEpoch,
        lastFoldToFinish: b.lastFoldToFinishMs,
        finish: b.finishMs,
        buildRecords: b.buildRecordsMs,
        sends: b.sendMs,
        sendOffsets: b.sendOffsetsMs,
        commit: b.commitMs,
        commitToReadable: performance.timeOrigin + seenAt - b.commitEndAt,
        sendCount: b.sends,
      };
      if (r > warmup && !isBurst) breakdowns.push(row);
      progress(`${label}: round ${r}${r <= warmup ? ' (warm-up)' : isBurst ? ' (burst)' : ''}: ${ms.toFixed(1)} ms  [ack→fold ${row.ackToLastFold.toFixed(1)}, finish ${row.finish.toFixed(1)}, records ${row.buildRecords.toFixed(1)}, ${row.sendCount} sends ${row.sends.toFixed(1)}, offsets ${row.sendOffsets.toFixed(1)}, commit ${row.commit.toFixed(1)}, →readable ${row.commitToReadable.toFixed(1)}]`);
    }
    await nextMessage(child, (msg: { type: string }) => msg.type === 'done', 60_000, 'aggregator finish').catch(() => undefined);
  } finally {
    await observer.stop().catch(() => undefined);
    await Promise.all(producers.map((p) => p.disconnect().catch(() => undefined)));
    if (child.exitCode === null) child.kill('SIGTERM');
    await deleteTopics(t, m);
    await t.close();
  }
  const keys = Object.keys(breakdowns[0] ?? {});
  const breakdownMedianMs = Object.fromEntries(keys.map((k) => [k, round(percentile(breakdowns.map((b) => b[k]!), 50), 2)]));
  return {
    nodes: o.nodes,
    params: o.params,
    rounds: paced.length,
    p50Ms: round(percentile(paced, 50)),
    p99Ms: round(percentile(paced, 99)),
    maxMs: round(Math.max(...paced)),
    samplesMs: paced.map((x) => round(x)),
    fromSendP50Ms: round(percentile(pacedFromSend, 50)),
    fromSendP99Ms: round(percentile(pacedFromSend, 99)),
    burstRounds: burst.length,
    burstP50Ms: round(percentile(burst, 50)),
    burstMaxMs: round(Math.max(...burst)),
    breakdownMedianMs,
    sendsPerRound: breakdownMedianMs.sendCount ?? 0,
    method: 'producer ack of the last update (performance.now) → read_committed consumer receipt of the ModelVersion (same process); aggregator in its own process; paced: N-1 updates folded before the last is sent',
  };
}
