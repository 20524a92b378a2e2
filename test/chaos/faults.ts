/**
 * The chaos run's faults: a seeded schedule (which fault, which node, how long, when in its round), and how each
 * one is done to the real processes, broker and ClickHouse data directory.
 */
import { existsSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { mulberry32 } from '../../src/ml/index.ts';
import type { ChaosBroker } from './processes.ts';
import { waitFor } from './processes.ts';
import type { Role, Supervisor } from './pipeline.ts';

export const FAULT_KINDS = [
  'aggregator-kill', 'aggregator-kill-in-recovery', 'aggregator-kill-mid-round', 'aggregator-kill-in-transaction',
  'node-kill', 'sink-kill', 'broker-restart', 'clickhouse-unavailable', 'slow-node',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface PlannedFault {
  index: number;
  kind: FaultKind;
  /** Which node (node kinds). */
  node: string;
  /** When in the round, ms after the run sees it start. */
  delayMs: number;
  /** How long a slow node is stopped or ClickHouse is unavailable, ms. */
  durationMs: number;
}

/**
 * The schedule of `count` faults for `seed`: every kind once in a seeded order (so that any run of at least nine
 * faults has them all), then kinds drawn at random. The same seed gives the same schedule.
 */
export function planFaults(seed: number, count: number, nodeIds: string[]): PlannedFault[] {
  const rand = mulberry32(seed >>> 0);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const first = [...FAULT_KINDS];
  for (let i = first.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [first[i], first[j]] = [first[j]!, first[i]!];
  }
  return Array.from({ length: count }, (_, index) => ({
    index,
    kind: index < first.length ? first[index]! : pick(FAULT_KINDS),
    node: pick(nodeIds),
    delayMs: Math.floor(rand() * 2_500),
    durationMs: 2_000 + Math.floor(rand() * 4_000),
  }));
}

export interface FaultContext {
  sup: Supervisor;
  broker: ChaosBroker;
  chdbPath: string;
  /** Progress output: one line per step. */
  say: (line: string) => void;
}

/** How long a restarted aggregator may take to recover (it waits ~13 s for the killed one's group session to expire). */
const RECOVERY_WAIT_MS = 180_000;

/** Does the fault; resolves when every process it touched runs again (or has been started again). Returns what was done. */
export async function inject(f: PlannedFault, c: FaultContext): Promise<string> {
  const { sup } = c;
  const round = sup.round();
  switch (f.kind) {
    case 'aggregator-kill': {
      await sup.kill('aggregator');
      sup.start('aggregator');
      return `kill -9 of the aggregator in round ${round}`;
    }
    case 'aggregator-kill-in-recovery': {
      await sup.kill('aggregator');
      const p = sup.start('aggregator');
      // Killed again while it re-reads the log: it waits for the first one's session to expire, then recovers.
      await new Promise((r) => setTimeout(r, 1_500 + (f.delayMs % 4_000)));
      const recovered = /recovered state from the log|published the initial version/.test(p.log());
      await sup.kill('aggregator');
      sup.start('aggregator');
      return `kill -9 of the aggregator in round ${round}, and of its successor ${recovered ? 'after' : 'during'} its recovery`;
    }
    case 'aggregator-kill-mid-round':
    case 'aggregator-kill-in-transaction': {
      // FEDSTREAM_FAULT: the successor SIGKILLs itself at that point of the next round (aggregator/transaction.ts).
      const point = f.kind === 'aggregator-kill-mid-round' ? 'mid-round' : 'before-commit';
      const target = round + 1;
      await sup.kill('aggregator');
      const armed = sup.start('aggregator', { FEDSTREAM_FAULT: `kill:${point}:${target}` });
      await waitFor(() => !armed.alive(), RECOVERY_WAIT_MS, () => `the aggregator armed with kill:${point}:${target} to die at its fault`);
      const how = await armed.exited;
      if (how !== 'SIGKILL') throw new Error(`the aggregator armed with kill:${point}:${target} exited with ${how}; log tail:\n${armed.tail()}`);
      if (!/fault injection: SIGKILL/.test(armed.log())) throw new Error(`the aggregator armed with kill:${point}:${target} died without its fault; log tail:\n${armed.tail()}`);
      sup.start('aggregator');
      return `kill -9 of the aggregator in round ${round}; its successor killed itself ${point === 'mid-round' ? 'mid-round' : 'inside the transaction closing'} round ${target}`;
    }
    case 'node-kill': {
      await sup.kill(f.node as Role);
      sup.start(f.node as Role);
      return `kill -9 of ${f.node} in round ${round}`;
    }
    case 'sink-kill': {
      await sup.kill('sink');
      sup.start('sink');
      return `kill -9 of the sink in round ${round}`;
    }
    case 'broker-restart': {
      const t0 = Date.now();
      await c.broker.restart();
      return `broker stopped and started on the same data in round ${round} (${((Date.now() - t0) / 1000).toFixed(1)} s down)`;
    }
    case 'clickhouse-unavailable': {
      // The data directory replaced by a plain file: every insert fails (statvfs ENOTDIR) until it is back.
      const away = `${c.chdbPath}.away`;
      if (!existsSync(c.chdbPath)) return `ClickHouse data directory not made yet in round ${round}; nothing to take away`;
      renameSync(c.chdbPath, away);
      writeFileSync(c.chdbPath, 'ClickHouse unavailable (chaos run)\n');
      await new Promise((r) => setTimeout(r, f.durationMs));
      rmSync(c.chdbPath);
      renameSync(away, c.chdbPath);
      return `ClickHouse data directory unavailable for ${(f.durationMs / 1000).toFixed(1)} s in round ${round}`;
    }
    case 'slow-node': {
      const p = sup.get(f.node as Role);
      if (!p.alive()) return `${f.node} not running; nothing to slow down`;
      p.child.kill('SIGSTOP');
      await new Promise((r) => setTimeout(r, f.durationMs));
      p.child.kill('SIGCONT');
      return `${f.node} stopped (SIGSTOP) for ${(f.durationMs / 1000).toFixed(1)} s in round ${round}`;
    }
  }
}
