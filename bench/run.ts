/**
 * `npm run bench` — the benchmarks of issue 6, side by side with their references, written to
 * bench/results/latest.json (and, in full mode, to the table in docs/performance.md); a run of some sections
 * (--only) writes bench/results/partial.json instead and leaves the docs alone.
 *
 *   npm run bench                       full run (5-6 minutes on 2 cores)
 *   npm run bench -- --quick            every section in a reduced form (CI smoke, about 1.5 minutes)
 *   npm run bench -- --only=aggregate,decision   some sections only (aggregate, decision, ingest, producer, scale, robust), to partial.json
 *   npm run bench -- --no-docs          do not touch docs/performance.md
 *
 * Each section is independent: a failing section is recorded with its error and the run goes on; the exit code
 * is non-zero when any section failed. The broker is the benchmark's own (state in .kafka/bench).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { benchAggregate } from './aggregate.ts';
import { benchDecision } from './decision.ts';
import { benchIngest } from './ingest.ts';
import { benchProducer } from './producer.ts';
import { renderDocs } from './report.ts';
import { benchScale } from './scale.ts';
import { benchRobust } from './robust.ts';
import { ROOT, machine, progress, round, startBroker, type Broker } from './lib.ts';

const SECTIONS = ['aggregate', 'decision', 'ingest', 'producer', 'scale', 'robust'] as const;
type Section = (typeof SECTIONS)[number];

interface Args {
  quick: boolean;
  only: Set<Section>;
  docs: boolean;
}

function parseArgs(argv: string[]): Args {
  let quick = false;
  let docs = true;
  let only = new Set<Section>(SECTIONS);
  for (const a of argv) {
    if (a === '--quick') quick = true;
    else if (a === '--no-docs') docs = false;
    else if (a.startsWith('--only=')) {
      const names = a.slice('--only='.length).split(',').filter(Boolean);
      for (const n of names) if (!SECTIONS.includes(n as Section)) throw new Error(`--only: unknown section ${n}; expected some of ${SECTIONS.join(', ')}`);
      only = new Set(names as Section[]);
    } else throw new Error(`unknown argument ${a}; usage: npm run bench [-- --quick] [--only=${SECTIONS.join(',')}] [--no-docs]`);
  }
  return { quick, only, docs };
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const q = args.quick;
  const startedAt = new Date().toISOString();
  const t0 = performance.now();
  const m = machine();
  progress(`${q ? 'quick' : 'full'} run on ${m.cpuModel}, ${m.cores} cores, ${m.memoryGb} GiB, Node ${m.node}; load average ${m.loadAvgStart}`);
  const results: Record<string, unknown> = {};
  const errors: Record<string, string> = {};
  const timings: Record<string, number> = {};

  let broker: Broker | undefined;
  const needsBroker = [...args.only].some((s) => s !== 'aggregate');
  const section = async (name: Section, fn: () => Promise<void>) => {
    if (!args.only.has(name)) return;
    const s0 = performance.now();
    progress(`== ${name}`);
    try {
      await fn();
    } catch (err) {
      const e = err as Error;
      errors[name] = e.stack ?? e.message;
      progress(`!! ${name} failed: ${e.message}`);
    }
    timings[name] = round((performance.now() - s0) / 1000, 1);
    progress(`== ${name} done in ${timings[name]} s`);
  };

  try {
    await section('aggregate', async () => {
      const reps = q ? 2 : 5;
      results.aggregate = await benchAggregate(4_000_000, q ? 10 : 100, reps, { sweepK: !q, flower: true });
      results.aggregate200k = await benchAggregate(200_000, q ? 20 : 100, q ? 2 : 7, { sweepK: !q, flower: true });
    });
    if (needsBroker) {
      progress('starting the benchmark broker (FEDSTREAM_KAFKA_DIR, default .kafka/bench)');
      broker = await startBroker();
      progress(`broker at ${broker.brokers}`);
    }
    await section('decision', async () => {
      results.decision = await benchDecision(broker!.brokers, { nodes: 100, params: 200_000, rounds: q ? 5 : 100, burstRounds: q ? 1 : 5 });
    });
    await section('ingest', async () => {
      results.ingest = await benchIngest(broker!.brokers, { seconds: q ? 5 : 60, capacitySeconds: q ? 3 : 15 });
    });
    await section('producer', async () => {
      results.producer = await benchProducer(broker!.brokers, { records: q ? 50_000 : 500_000, reps: q ? 1 : 3 });
    });
    await section('scale', async () => {
      results.scale = await benchScale(broker!.brokers, { params: q ? 20_000 : 200_000, small: 100, large: 1000 });
    });
    await section('robust', async () => {
      results.robust = await benchRobust(broker!.brokers, { nodes: q ? 10 : 100, params: q ? 200_000 : 4_000_000, quick: q });
    });
  } finally {
    await broker?.release();
  }

  m.loadAvgEnd = round(os.loadavg()[0]!, 2);
  const out = {
    mode: q ? 'quick' : 'full',
    startedAt,
    durationSeconds: round((performance.now() - t0) / 1000, 1),
    // BENCH_ROBUST chooses the robust section's rows: part of how to run it again.
    command: `${process.env.BENCH_ROBUST ? `BENCH_ROBUST='${process.env.BENCH_ROBUST}' ` : ''}npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
    machine: m,
    sectionSeconds: timings,
    ...results,
    errors,
  };
  const dir = path.join(ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  // A run of some sections only must not overwrite the full figures the docs' table is built from.
  const partial = args.only.size !== SECTIONS.length;
  const file = path.join(dir, partial ? 'partial.json' : 'latest.json');
  writeFileSync(file, `${JSON.stringify(out, null, 2)}\n`);
  progress(`wrote ${path.relative(ROOT, file)}`);
  if (!q && args.docs && !partial) {
    renderDocs(out);
    progress('updated the table in docs/performance.md');
  }
  const failed = Object.keys(errors);
  if (failed.length) progress(`sections that failed: ${failed.join(', ')}`);
  progress(`done in ${out.durationSeconds} s; load average ${m.loadAvgStart} at the start, ${m.loadAvgEnd} at the end`);
  return failed.length ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(2);
  },
);
