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
    .action((flags: RobustnessFlags, cmd: Command) => runCommand(async () => {
      const asked = cmd.optsWithGlobals<{ logLevel?: string }>().logLevel ?? process.env.FEDSTREAM_LOG_LEVEL ?? process.env.LOG_LEVEL;
      if (asked === undefined) setRootLogger(createLogger('warn'));
      const { runRobustness, robustnessChart, robustnessMarkdown, robustnessTable, replaceSection } = await import('../../demo/index.ts');
      const out = resolve(flags.out);
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
      const at = process.argv.indexOf('robustness');
      const command = ['npx fedstream experiment robustness', ...(at < 0 ? [] : process.argv.slice(at + 1))].join(' ');
      mkdirSync(out, { recursive: true });
      const svg = robustnessChart(result);
      writeFileSync(resolve(out, 'robustness.json'), JSON.stringify(result, null, 2) + '\n');
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
      process.stderr.write(`wrote ${out}/robustness.{json,md,svg} (${(result.durationMs / 60_000).toFixed(1)} min)\n`);
      return 0;
    }));
}
