/**
 * Section 6: the robust strategies' cost (issue 14, item 3). One round of N simulated nodes' updates of P parameters
 * on the real broker, aggregated by the real Aggregator in its own process (bench/agg-child.ts) with FedAvg, then
 * median, trimmed mean, Krum and Multi-Krum — in memory (a budget above N·P·4 bytes) and, for the median and the
 * Krums, past a budget smaller than N·P·4 bytes, where the round's updates are re-read from the updates topic in
 * blocks of coordinates (src/aggregator/strategies/spill.ts). Per strategy: the aggregator's peak RSS (VmHWM), the
 * round's wall time (first update sent → version published), and the aggregation's own time (the strategy's settle +
 * finish).
 */
import type { ChildProcess } from 'node:child_process';
import { nextMessage, procMemory, progress, round } from './lib.ts';
import { benchManifest, connectProducers, deleteTopics, kafka, startAggregatorChild, updateRecords, updateVariants } from './sim.ts';

export interface RobustRow {
  label: string;
  strategy: Record<string, unknown>;
  /** The strategy's memory budget (bytes), when it has one. */
  budgetBytes: number | null;
  /** Whether the round was computed from the log in blocks (passes over the log), or in memory (0). */
  logPasses: number;
  rssMb: number;
  startRssMb: number;
  roundSeconds: number;
  aggregateSeconds: number;
}

export interface RobustFigures {
  nodes: number;
  params: number;
  /** N·P·4: what keeping every update in memory takes. */
  updatesBytes: number;
  rows: RobustRow[];
}

async function oneRound(brokers: string, nodes: number, params: number, label: string, strategy: Record<string, unknown> | undefined): Promise<RobustRow> {
  const m = benchManifest(`robust-${label.replace(/[^a-z0-9]+/g, '')}`, params, nodes, 1);
  const t = kafka(brokers, 'bench-robust');
  const child: ChildProcess = await startAggregatorChild(brokers, m, params, { reportFolds: false, ...(strategy ? { strategy } : {}) });
  const startMb = procMemory(child.pid!)?.hwmMb ?? NaN;
  // Four producers: at most four 4·P-byte payloads being reassembled at once, within limits.maxPendingBytes (128 MiB).
  const ps = await connectProducers(t, 4);
  const variants = updateVariants(params);
  try {
    const version = nextMessage<{ type: string; version: number; participants: number; breakdown: { finishMs: number }; metrics?: Record<string, number> }>(
      child, (msg) => msg.type === 'version' && msg.version === 1, 1_800_000, `${label}: round of ${nodes} nodes`);
    const t0 = performance.now();
    await Promise.all(ps.map(async (p, w) => {
      for (let j = w; j < nodes; j += ps.length) await p.send(updateRecords(m, j, 1, 0, variants[j % variants.length]!));
    }));
    const v = await version;
    const seconds = (performance.now() - t0) / 1000;
    const done = await nextMessage<{ type: string; hwmMb: number }>(child, (msg) => msg.type === 'done', 120_000, 'aggregator exit');
    const hwm = Math.max(done.hwmMb, procMemory(child.pid!)?.hwmMb ?? 0);
    const budget = typeof strategy?.memoryBudgetBytes === 'number' ? strategy.memoryBudgetBytes : null;
    const row: RobustRow = {
      label, strategy: strategy ?? { name: 'fedavg' }, budgetBytes: budget, logPasses: v.metrics?.logPasses ?? 0,
      rssMb: round(hwm, 1), startRssMb: round(startMb, 1), roundSeconds: round(seconds, 2), aggregateSeconds: round(v.breakdown.finishMs / 1000, 2),
    };
    progress(`robust: ${label}: ${v.participants} updates; peak RSS ${row.rssMb} MiB (${row.startRssMb} after start-up); round ${row.roundSeconds} s, aggregation ${row.aggregateSeconds} s${row.logPasses ? `, ${row.logPasses} passes over the log` : ''}`);
    return row;
  } finally {
    await Promise.all(ps.map((p) => p.disconnect().catch(() => undefined)));
    if (child.exitCode === null) child.kill('SIGTERM');
    await deleteTopics(t, m);
    await t.close();
  }
}

/** `quick` (the CI smoke): median from the log only, the path that does the most. */
export async function benchRobust(brokers: string, o: { nodes: number; params: number; quick: boolean }): Promise<RobustFigures> {
  const bytes = o.nodes * o.params * 4;
  // In memory: room for every update; from the log: a third of that (at least 1 MiB and one decoded update more).
  const inMemory = Math.ceil(bytes * 1.25);
  const small = Math.max(1024 ** 2, Math.floor(bytes / 3));
  // Multi-Krum keeps m = n − f updates (Blanchard et al. 2017, §4) and averages them.
  const multiKrum = { name: 'krum', numMaliciousClients: 10, numClientsToKeep: Math.max(1, o.nodes - 10) };
  const runs: Array<[string, Record<string, unknown> | undefined]> = o.quick
    ? [['fedmedian from the log', { name: 'fedmedian', memoryBudgetBytes: small }]]
    : [
      ['fedavg', undefined],
      ['fedmedian', { name: 'fedmedian', memoryBudgetBytes: inMemory }],
      ['fedtrimmedavg (β=0.1)', { name: 'fedtrimmedavg', beta: 0.1, memoryBudgetBytes: inMemory }],
      ['krum (f=10)', { name: 'krum', numMaliciousClients: 10, memoryBudgetBytes: inMemory }],
      ['multi-krum (f=10 m=n-f)', { ...multiKrum, memoryBudgetBytes: inMemory }],
      ['fedmedian from the log', { name: 'fedmedian', memoryBudgetBytes: small }],
      ['krum (f=10) from the log', { name: 'krum', numMaliciousClients: 10, memoryBudgetBytes: small }],
      ['multi-krum (f=10 m=n-f) from the log', { ...multiKrum, memoryBudgetBytes: small }],
    ];
  // BENCH_ROBUST=label,label runs some of them only (a round of 100 × 4M updates takes minutes on a loaded machine).
  const only = process.env.BENCH_ROBUST?.split(',').map((s) => s.trim()).filter(Boolean);
  const unknown = only?.filter((l) => !runs.some(([label]) => label === l)) ?? [];
  if (unknown.length) throw new Error(`BENCH_ROBUST: no strategy labelled ${unknown.join(', ')}; the labels are: ${runs.map(([l]) => l).join(', ')}`);
  const rows: RobustRow[] = [];
  for (const [label, strategy] of runs) if (!only || only.includes(label)) rows.push(await oneRound(brokers, o.nodes, o.params, label, strategy));
  return { nodes: o.nodes, params: o.params, updatesBytes: bytes, rows };
}
