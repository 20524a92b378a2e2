/**
 * `<out>/summary.json` of a demo run, and the one line printed on stdout at the end.
 */
import type { Manifest } from '../config/index.ts';

export interface RoundSummary {
  round: number;
  /** The version the round produced. */
  version: number;
  /** Held-out accuracy and loss of that version (null when the pipeline has no held-out data). */
  accuracy: number | null;
  loss: number | null;
  /** Nodes whose updates the version averages. */
  participants: number;
  /** From the round's START to its close, ms. */
  ms: number;
}

export interface DemoSettings {
  /** The manifest file the run started from. */
  pipeline: string;
  tenant: string;
  name: string;
  nodes: number;
  partition: string;
  shardsPerNode?: number;
  trainExamples?: number;
  testExamples?: number;
  rounds: number;
  epochs: number;
  batchSize: number;
  learningRate: number;
  optimizer: string;
  fraction: number;
  targetUpdates: number;
  minUpdates: number;
  /** Seeds of the data split and partition, and of the initial weights (and node selection). */
  dataSeed: number | null;
  modelSeed: number;
  model: Manifest['model'];
  transport: 'memory' | 'kafka';
  kafka?: string;
  clickhouse: { kind: 'embedded' | 'server'; location: string; database: string };
  workers: number;
  backend: string;
  out: string;
}

export interface DemoSummary {
  /** Held-out accuracy of the last version. */
  finalAccuracy: number | null;
  finalLoss: number | null;
  /** Rounds closed (versions published after the initial one). */
  rounds: number;
  /** Versions published, the initial version 0 included. */
  versions: number;
  finalVersion: number;
  /** Wall time of the whole run, from start to the report written. */
  durationMs: number;
  /** Wall time of training alone: from the first round's start to the last version. */
  trainingMs: number;
  nodes: number;
  perRound: RoundSummary[];
  settings: DemoSettings;
  /** Jobs and training time of each worker thread. */
  workers: { size: number; jobs: number[]; trainingMs: number[] };
  /** Rows the sink wrote per table. */
  clickhouseRows: Record<string, number>;
  /** Files written, relative to `settings.out`. */
  files: { summary: string; report: string; clickhouse?: string };
  startedAt: string;
  fedstreamVersion: string;
}

/** The summary line (stdout): `final accuracy=0.9012 versions=11 duration=95.3s`. */
export function summaryLine(s: Pick<DemoSummary, 'finalAccuracy' | 'versions' | 'durationMs'>): string {
  const acc = s.finalAccuracy === null ? 'n/a' : s.finalAccuracy.toFixed(4);
  return `final accuracy=${acc} versions=${s.versions} duration=${(s.durationMs / 1000).toFixed(1)}s`;
}

/** Checks the shape of a summary.json (what the integration test and readers rely on); returns the problems. */
export function summaryProblems(value: unknown): string[] {
  const problems: string[] = [];
  const s = value as Partial<DemoSummary> | null;
  if (typeof s !== 'object' || s === null) return ['not an object'];
  const num = (k: keyof DemoSummary, nullable = false) => {
    const v = s[k];
    if (!(typeof v === 'number' && Number.isFinite(v)) && !(nullable && v === null)) problems.push(`${k}: expected a number${nullable ? ' or null' : ''}`);
  };
  num('finalAccuracy', true);
  num('rounds');
  num('versions');
  num('durationMs');
  num('nodes');
  if (!Array.isArray(s.perRound)) problems.push('perRound: expected an array');
  else {
    s.perRound.forEach((r, i) => {
      for (const k of ['round', 'version', 'participants', 'ms'] as const) {
        if (typeof r?.[k] !== 'number') problems.push(`perRound[${i}].${k}: expected a number`);
      }
      for (const k of ['accuracy', 'loss'] as const) {
        if (typeof r?.[k] !== 'number' && r?.[k] !== null) problems.push(`perRound[${i}].${k}: expected a number or null`);
      }
    });
    if (typeof s.rounds === 'number' && s.perRound.length !== s.rounds) problems.push(`perRound: ${s.perRound.length} entries for ${s.rounds} rounds`);
  }
  if (typeof s.settings !== 'object' || s.settings === null) problems.push('settings: expected an object');
  else {
    for (const k of ['nodes', 'rounds', 'epochs', 'batchSize', 'learningRate'] as const) {
      if (typeof s.settings[k] !== 'number') problems.push(`settings.${k}: expected a number`);
    }
    if (typeof s.settings.partition !== 'string') problems.push('settings.partition: expected a string');
  }
  return problems;
}
