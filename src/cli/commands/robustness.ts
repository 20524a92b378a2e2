/** `fedstream experiment robustness`: each strategy's held-out accuracy with 0 to 3 Byzantine nodes of 10 (demo/experiment-robustness.ts). */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';
import type { Command } from 'commander';
import { ConfigError, createLogger, rootLogger, setRootLogger } from '../../common/index.ts';
import { runCommand } from '../../service/index.ts';

interface RobustnessFlags {
  rounds?: string;
  nodes?: string;
  byzantine?: string;
  attacks?: string;
  strategies?: string;
  trainExamples?: string;
  testExamples?: string;
  seed?: string;
  workers?: string;
  out: string;
  doc?: string;
  fromJson?: string;
}

function int(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isInteger(n)) throw new ConfigError(flag, `expected an integer, got "${v}"`);
  return n;
}

function list(v: string | undefined): string[] | undefined {
  return v?.split(',').map((s) => s.trim()).filter(Boolean);
}

export function registerRobustness(experiment: Command): void {
  experiment.command('robustness')
    .description('held-out accuracy of each strategy (FedAvg, clipped FedAvg, median, trimmed mean, Krum, Multi-Krum) with 0 to 3 Byzantine nodes of 10 (sign flip ×10, scaling ×100, Gaussian noise, label flip); writes a JSON, a Markdown table and an SVG chart')
    .option('--rounds <n>', 'rounds per run', '5')
    .option('--nodes <n>', 'nodes', '10')
    .option('--byzantine <list>', 'numbers of Byzantine nodes, comma-separated', '0,1,2,3')
    .option('--attacks <list>', 'attacks, comma-separated: sign-flip, scaling, noise, label-flip (default all)')
    .option('--strategies <list>', 'strategy labels, comma-separated (default all; see docs/strategies.md)')
    .option('--train-examples <n>', 'MNIST training digits shared among the nodes (default 9000)')
    .option('--test-examples <n>', 'held-out digits (default 1000)')
    .option('--seed <n>', 'seed of the split, initial weights and noise', '1')
    .option('--workers <n>', 'training worker threads (default: one per core)')
    .option('--out <dir>', 'where robustness.json, robustness.md and robustness.svg go', 'fedstream-experiment/robustness')
    .option('--doc <file>', 'also replace the generated section of this document (e.g. docs/strategies.md); the chart goes beside it')
    .option('--from-json <file>', 'run nothing: re-render the tables, chart and --doc section from a robustness.json an earlier run wrote')
    .action((flags: RobustnessFlags, cmd: Command) => runCommand(async () => {
      const asked = cmd.optsWithGlobals<{ logLevel?: string }>().logLevel ?? process.env.FEDSTREAM_LOG_LEVEL ?? process.env.LOG_LEVEL;
      if (asked === undefined) setRootLogger(createLogger('warn'));
      const { robustnessChart, robustnessMarkdown, robustnessTable, replaceSection, parseRobustnessResult } = await import('../../demo/index.ts');
      const out = resolve(flags.out);
      const result = flags.fromJson ? parseRobustnessResult(readFileSync(resolve(flags.fromJson), 'utf8'), flags.fromJson) : await run(flags, commandLine(cmd));
      // The command that produced the numbers: a re-render keeps the original run's.
      const command = result.command ?? 'npx fedstream experiment robustness (command not recorded)';
      mkdirSync(out, { recursive: true });
      const svg = robustnessChart(result);
      if (!flags.fromJson || resolve(out, 'robustness.json') !== resolve(flags.fromJson)) writeFileSync(resolve(out, 'robustness.json'), JSON.stringify(result, null, 2) + '\n');
      writeFileSync(resolve(out, 'robustness.svg'), svg);
      writeFileSync(resolve(out, 'robustness.md'), robustnessMarkdown(result, command, 'robustness.svg') + '\n');
      if (flags.doc) {
        const doc = resolve(flags.doc);
        const chart = resolve(dirname(doc), 'robustness.svg');
        writeFileSync(chart, svg);
        writeFileSync(doc, replaceSection(readFileSync(doc, 'utf8'), robustnessMarkdown(result, command, relative(dirname(doc), chart))));
        process.stderr.write(`updated ${doc} and ${chart}\n`);
      }
      process.stdout.write(robustnessTable(result) + '\n');
      process.stderr.write(`wrote ${out}/robustness.{json,md,svg}${flags.fromJson ? ` from ${flags.fromJson}` : ` (${(result.durationMs / 60_000).toFixed(1)} min)`}\n`);
      return 0;
    }));
}

/**
 * The command as typed, for the record: the options given on the command line (not their defaults), in the order the
 * command defines them, `--out` and `--doc` left out (where the result went, not what it is).
 */
function commandLine(cmd: Command): string {
  const given = cmd.options.filter((o) => {
    const key = o.attributeName();
    return cmd.getOptionValueSource(key) === 'cli' && !['out', 'doc', 'fromJson', 'logLevel', 'logFormat'].includes(key);
  });
  return ['npx fedstream experiment robustness', ...given.map((o) => `${o.long} ${String(cmd.getOptionValue(o.attributeName()))}`)].join(' ');
}

/** Runs the grid the flags ask for; the result records `command`, the command line that produced it. */
async function run(flags: RobustnessFlags, command: string) {
  const { runRobustness } = await import('../../demo/index.ts');
  const byzantine = list(flags.byzantine)?.map((s) => int(s, '--byzantine')!);
  const attacks = list(flags.attacks) as Parameters<typeof runRobustness>[0]['attacks'];
  const strategies = list(flags.strategies);
  const result = await runRobustness({
    logger: rootLogger(),
    rounds: int(flags.rounds, '--rounds'),
    nodes: int(flags.nodes, '--nodes'),
    seed: int(flags.seed, '--seed'),
    workers: int(flags.workers, '--workers'),
    trainExamples: int(flags.trainExamples, '--train-examples'),
    testExamples: int(flags.testExamples, '--test-examples'),
    ...(byzantine ? { byzantine } : {}),
    ...(attacks ? { attacks } : {}),
    ...(strategies ? { strategies } : {}),
    onRun: (r) => process.stderr.write(`${r.strategy}, ${r.attack ? `${r.byzantine}× ${r.attack}` : 'no attack'}: accuracy ${r.accuracy.toFixed(3)}, ${Math.round(r.msPerRound)} ms/round\n`),
  });
  return { ...result, command };
}
