/**
 * Section 5: scale. One round with 100, then 1,000 simulated nodes (distinct node ids, updates sent through a
 * pool of 20 producers) on the real broker; the aggregator runs as its own process, whose peak resident set
 * (VmHWM in /proc/<pid>/status) is read at the end. FedAvg folds into one accumulator, so the peak should not
 * grow with the number of nodes.
 */
import type { ChildProcess } from 'node:child_process';
import { nextMessage, procMemory, progress, round } from './lib.ts';
import { benchManifest, connectProducers, deleteTopics, kafka, startAggregatorChild, updateRecords, updateVariants } from './sim.ts';

export interface ScaleFigures {
  params: number;
  rssMb100: number;
  rssMb1000: number;
  /** Peak RSS right after start-up (version 0 published), before any update: the baseline of the process. */
  startRssMb100: number;
  startRssMb1000: number;
  roundSeconds100: number;
  roundSeconds1000: number;
  participants1000: number;
  producers: number;
}

async function oneRound(brokers: string, nodes: number, params: number, producers: number): Promise<{ hwmMb: number; startMb: number; seconds: number; participants: number }> {
  const m = benchManifest(`scale${nodes}`, params, nodes, 1);
  const t = kafka(brokers, 'bench-scale');
  const child: ChildProcess = await startAggregatorChild(brokers, m, params, { reportFolds: false });
  const startMb = procMemory(child.pid!)?.hwmMb ?? NaN;
  const ps = await connectProducers(t, producers);
  const variants = updateVariants(params);
  try {
    const version = nextMessage<{ type: string; version: number; participants: number }>(child, (msg) => msg.type === 'version' && msg.version === 1, 600_000, `round of ${nodes} nodes`);
    const t0 = performance.now();
    let sent = 0;
    await Promise.all(ps.map(async (p, w) => {
      for (let j = w; j < nodes; j += producers) {
        await p.send(updateRecords(m, j, 1, 0, variants[j % variants.length]!));
        sent++;
      }
    }));
    progress(`scale: ${sent} updates of ${params} parameters sent in ${((performance.now() - t0) / 1000).toFixed(1)} s; waiting for the round to close`);
    const v = await version;
    const seconds = (performance.now() - t0) / 1000;
    const done = await nextMessage<{ type: string; hwmMb: number }>(child, (msg) => msg.type === 'done', 60_000, 'aggregator exit');
    const hwm = Math.max(done.hwmMb, procMemory(child.pid!)?.hwmMb ?? 0);
    progress(`scale: ${nodes} nodes: round closed with ${v.participants} updates in ${seconds.toFixed(1)} s; aggregator peak RSS ${hwm.toFixed(0)} MiB (${startMb.toFixed(0)} MiB after start-up)`);
    return { hwmMb: hwm, startMb, seconds, participants: v.participants };
  } finally {
    await Promise.all(ps.map((p) => p.disconnect().catch(() => undefined)));
    if (child.exitCode === null) child.kill('SIGTERM');
    await deleteTopics(t, m);
    await t.close();
  }
}

export async function benchScale(brokers: string, o: { params: number; small: number; large: number; producers?: number }): Promise<ScaleFigures> {
  const producers = o.producers ?? 20;
  const a = await oneRound(brokers, o.small, o.params, producers);
  const b = await oneRound(brokers, o.large, o.params, producers);
  if (b.participants !== o.large) throw new Error(`the round of ${o.large} nodes closed with ${b.participants} updates`);
  return {
    params: o.params,
    rssMb100: round(a.hwmMb, 1),
    rssMb1000: round(b.hwmMb, 1),
    startRssMb100: round(a.startMb, 1),
    startRssMb1000: round(b.startMb, 1),
    roundSeconds100: round(a.seconds, 2),
    roundSeconds1000: round(b.seconds, 2),
    participants1000: b.participants,
    producers,
  };
}
