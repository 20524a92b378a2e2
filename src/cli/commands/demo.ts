/** `fedstream demo` and `fedstream experiment`: the whole pipeline on one machine, and the research runs. */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { Option, type Command } from 'commander';
import { ConfigError, createLogger, rootLogger, setRootLogger } from '../../common/index.ts';
import { DEFAULTS } from '../../config/index.ts';
import { onSignals, runCommand } from '../../service/index.ts';

/** Flags arrive as strings and are checked here, so that a bad value is a ConfigError (exit 2) naming the flag. */
function int(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isInteger(n)) throw new ConfigError(flag, `expected an integer, got "${v}"`);
  return n;
}

function float(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new ConfigError(flag, `expected a number, got "${v}"`);
  return n;
}

/**
 * The demo prints progress and one summary line; pino's info lines (every update, every version) would
 * bury them. Unless a level was asked for (--log-level or FEDSTREAM_LOG_LEVEL / LOG_LEVEL), log warnings only.
 */
function quietLogger(cmd: Command): void {
  const asked = cmd.optsWithGlobals<{ logLevel?: string }>().logLevel ?? process.env.FEDSTREAM_LOG_LEVEL ?? process.env.LOG_LEVEL;
  if (asked === undefined) setRootLogger(createLogger('warn'));
}

interface DemoFlags {
  nodes?: string;
  rounds?: string;
  iid?: boolean;
  epochs?: string;
  batchSize?: string;
  learningRate?: string;
  seed?: string;
  out: string;
  kafka?: string;
  clickhouse?: string;
  pipeline?: string;
  workers?: string;
  trainExamples?: string;
  testExamples?: string;
  progress: 'auto' | 'tty' | 'plain' | 'none';
}

interface ExperimentFlags {
  target: string;
  maxRounds?: string;
  nodes?: string;
  fraction: string;
  seed: string;
  quick?: boolean;
  workers?: string;
  out: string;
  json?: string;
  markdown?: string;
  only?: string;
  learningRates?: string;
  lrGrid?: boolean;
  grid?: string;
}

const SETTING = /^(fedsgd|fedavg)-(iid|non-iid)$/;

function parseSetting(s: string, flag: string): { algorithm: 'fedsgd' | 'fedavg'; partition: 'iid' | 'non-iid' } {
  const m = SETTING.exec(s.trim());
  if (!m) throw new ConfigError(flag, `expected fedsgd-iid, fedavg-iid, fedsgd-non-iid or fedavg-non-iid, got "${s}"`);
  return { algorithm: m[1] as 'fedsgd' | 'fedavg', partition: m[2] as 'iid' | 'non-iid' };
}

/** `fedavg-iid=0.2,fedsgd-non-iid=0.5` */
function parseLearningRates(text: string | undefined): Partial<Record<'fedsgd' | 'fedavg', Partial<Record<'iid' | 'non-iid', number>>>> | undefined {
  if (text === undefined) return undefined;
  const out: Partial<Record<'fedsgd' | 'fedavg', Partial<Record<'iid' | 'non-iid', number>>>> = {};
  for (const part of text.split(',').filter((p) => p.trim() !== '')) {
    const [name, value] = part.split('=');
    const { algorithm, partition } = parseSetting(name ?? '', '--learning-rates');
    const lr = float(value, '--learning-rates');
    if (lr === undefined || !(lr > 0)) throw new ConfigError('--learning-rates', `expected <setting>=<positive number>, got "${part}"`);
    (out[algorithm] ??= {})[partition] = lr;
  }
  return out;
}

function demoOptions(f: DemoFlags) {
  return {
    nodes: int(f.nodes, '--nodes'),
    rounds: int(f.rounds, '--rounds'),
    iid: f.iid ?? false,
    epochs: int(f.epochs, '--epochs'),
    batchSize: int(f.batchSize, '--batch-size'),
    learningRate: float(f.learningRate, '--learning-rate'),
    seed: int(f.seed, '--seed'),
    out: f.out,
    kafka: f.kafka,
    clickhouse: f.clickhouse,
    pipeline: f.pipeline,
    workers: int(f.workers, '--workers'),
    trainExamples: int(f.trainExamples, '--train-examples'),
    testExamples: int(f.testExamples, '--test-examples'),
    progress: f.progress,
  };
}

/** `fedstream demo` and `fedstream experiment`. */
export function registerDemoCommands(program: Command): void {
  program.command('demo')
    .description('run the whole pipeline on this machine with no servers: in-memory transport, embedded ClickHouse, an aggregator, the sink and N nodes training MNIST; writes <out>/summary.json and <out>/report.html')
    .option('--nodes <n>', 'nodes (MNIST partitions); default the manifest\'s (10)')
    .option('--rounds <n>', 'rounds; default the manifest\'s')
    .option('--iid', 'split the digits IID instead of non-IID label shards')
    .option('--epochs <n>', 'local epochs E per round')
    .option('--batch-size <n>', 'local minibatch size B')
    .option('--learning-rate <x>', 'SGD learning rate')
    .option('--seed <n>', 'seed of the data split, the partition, the initial weights and node selection')
    .option('--out <dir>', 'output directory; its previous summary.json, report.html and clickhouse/ are removed first', DEFAULTS.demoOutDir)
    .option('--kafka <brokers>', 'run over a Kafka cluster (host:port[,host:port]) instead of the in-memory transport')
    .option('--clickhouse <url>', 'write to a ClickHouse server (http://host:8123) instead of embedded ClickHouse under <out>/clickhouse')
    .option('-p, --pipeline <file>', 'run this pipeline manifest instead of pipelines/mnist-fedavg.yaml (flags still override it)')
    .option('--workers <n>', 'training worker threads (default: one per core)')
    .option('--train-examples <n>', 'MNIST digits used for training (default: all but the held-out ones)')
    .option('--test-examples <n>', 'MNIST digits held out for evaluation')
    .addOption(new Option('--progress <mode>', 'progress display: auto (in place on a terminal, plain lines otherwise), tty, plain or none').choices(['auto', 'tty', 'plain', 'none']).default('auto'))
    .action((flags: DemoFlags, cmd: Command) => runCommand(async () => {
      quietLogger(cmd);
      const { runDemo, summaryLine, hasPreviousRun, planDemo } = await import('../../demo/index.ts');
      const logger = rootLogger();
      const options = { ...demoOptions(flags), logger };
      const plan = planDemo(options);
      if (hasPreviousRun(plan.out)) process.stderr.write(`fedstream demo: clearing the previous run in ${plan.out}\n`);
      const settings = plan.manifest;
      process.stderr.write(`fedstream demo: ${plan.nodeIds.length} nodes, ${settings.data.source === 'mnist' ? `MNIST ${settings.data.partition === 'iid' ? 'IID' : `non-IID (${settings.data.shardsPerNode} label shards per node)`}` : 'file data'}, ${settings.rounds.count} round${settings.rounds.count === 1 ? '' : 's'} of ${settings.strategy.name} (E=${settings.training.epochs}, B=${settings.training.batchSize}, lr=${settings.training.learningRate}); `
        + `${settings.kafka.brokers ? `Kafka ${settings.kafka.brokers}` : 'in-memory transport'}, ${settings.analytics.clickhouse ? `ClickHouse ${settings.analytics.clickhouse}` : `embedded ClickHouse in ${settings.analytics.path}`}\n`);
      // The first signal says so and exits 130; the second exits at once.
      onSignals(() => { process.stderr.write('\nfedstream demo: interrupted\n'); });
      const summary = await runDemo(options, plan);
      process.stdout.write(summaryLine(summary) + '\n');
      process.stderr.write(`fedstream demo: wrote ${resolve(plan.out, summary.files.summary)} and ${resolve(plan.out, summary.files.report)}\n`);
      return 0;
    }));

  const experiment = program.command('experiment').description('research experiments');
  experiment.command('fedavg-vs-fedsgd')
    .description('rounds FedSGD (E=1, B=∞) and FedAvg (E=5, B=10) need to reach a target accuracy, IID and non-IID (McMahan et al. 2017, Tables 1-2); writes a Markdown table and a JSON')
    .option('--target <accuracy>', 'held-out accuracy to reach', '0.93')
    .option('--max-rounds <n>', 'round cap per setting (default 1500; 2 with --quick)')
    .option('--nodes <n>', 'clients K (default 100; 20 with --quick)')
    .option('--fraction <c>', 'fraction C of clients per round', '0.1')
    .option('--seed <n>', 'seed of the split, partitions, initial weights and client selection', '1')
    .option('--workers <n>', 'training worker threads (default: one per core)')
    .option('--only <settings>', 'comma-separated subset: fedsgd-iid, fedavg-iid, fedsgd-non-iid, fedavg-non-iid')
    .option('--quick', 'smoke run: a few rounds on a subset of the digits (writes under fedstream-experiment/ unless told otherwise)')
    .option('--learning-rates <list>', 'η per setting instead of the tuned ones, e.g. fedavg-iid=0.2,fedsgd-non-iid=0.5')
    .option('--lr-grid', 'instead: run every setting with every η of the grid (slow) and write the grid JSON')
    .option('--grid <file>', 'the η grid JSON (written by --lr-grid; its table goes into the Markdown when present)', 'bench/results/fedavg-vs-fedsgd-lr-grid.json')
    .option('--out <dir>', 'output folder of the results JSON and Markdown (default fedstream-experiment)', 'fedstream-experiment')
    .option('--json <file>', 'results JSON (default <out>/fedavg-vs-fedsgd.json; bench/results/fedavg-vs-fedsgd.json is the tracked one)')
    .option('--markdown <file>', 'results Markdown (default <out>/fedavg-vs-fedsgd.md; pass docs/fedavg-vs-fedsgd.md to update the tracked doc)')
    .action((flags: ExperimentFlags, cmd: Command) => runCommand(async () => {
      quietLogger(cmd);
      const { runFedAvgVsFedSgd, runLearningRateGrid, experimentMarkdown, experimentTable, gridTable } = await import('../../demo/index.ts');
      const only = flags.only?.split(',').map((s) => s.trim()).filter(Boolean).map((s) => parseSetting(s, '--only'));
      const learningRates = parseLearningRates(flags.learningRates);
      // Results go under the output folder unless a file is named: a run never overwrites a tracked doc by default.
      const stem = flags.quick ? 'fedavg-vs-fedsgd-quick' : 'fedavg-vs-fedsgd';
      const json = resolve(flags.json ?? join(flags.out, `${stem}.json`));
      const markdown = resolve(flags.markdown ?? join(flags.out, `${stem}.md`));
      const tty = Boolean(process.stderr.isTTY);
      const target = float(flags.target, '--target')!;
      let lastPlain = 0;
      const common = {
        nodes: int(flags.nodes, '--nodes'),
        fraction: float(flags.fraction, '--fraction')!,
        seed: int(flags.seed, '--seed')!,
        quick: flags.quick ?? false,
        workers: int(flags.workers, '--workers'),
        ...(only ? { only } : {}),
        logger: rootLogger(),
        onRound: ({ setting, round, accuracy, elapsedMs }: { setting: { algorithm: string; partition: string; learningRate: number }; round: number; accuracy: number; elapsedMs: number }) => {
          const line = `${setting.algorithm} ${setting.partition} (lr ${setting.learningRate}): round ${round} accuracy=${accuracy.toFixed(4)} elapsed=${(elapsedMs / 1000).toFixed(1)}s`;
          if (tty) process.stderr.write(`\r\x1b[2K${line}`);
          else if (Date.now() - lastPlain > 10_000) {
            lastPlain = Date.now();
            process.stderr.write(line + '\n');
          }
        },
      };
      const gridFile = resolve(flags.grid ?? 'bench/results/fedavg-vs-fedsgd-lr-grid.json');
      if (flags.lrGrid) {
        const grid = await runLearningRateGrid({ ...common, maxRounds: int(flags.maxRounds, '--max-rounds') });
        mkdirSync(dirname(gridFile), { recursive: true });
        writeFileSync(gridFile, JSON.stringify(grid, null, 2) + '\n');
        process.stdout.write(gridTable(grid, target) + '\n');
        process.stderr.write(`wrote ${gridFile}\n`);
        return 0;
      }
      const result = await runFedAvgVsFedSgd({ ...common, ...(learningRates ? { learningRates } : {}), target, maxRounds: int(flags.maxRounds, '--max-rounds') });
      if (tty) process.stderr.write('\r\x1b[2K');
      const at = process.argv.indexOf('fedavg-vs-fedsgd');
      const command = ['npx fedstream experiment fedavg-vs-fedsgd', ...(at < 0 ? [] : process.argv.slice(at + 1))].join(' ');
      const grid = !result.quick && existsSync(gridFile) ? JSON.parse(readFileSync(gridFile, 'utf8')) : undefined;
      for (const [file, text] of [[json, JSON.stringify(result, null, 2) + '\n'], [markdown, experimentMarkdown(result, command, grid)]] as const) {
        mkdirSync(dirname(file), { recursive: true });
        writeFileSync(file, text);
      }
      process.stdout.write(experimentTable(result) + '\n');
      process.stderr.write(`wrote ${markdown} and ${json} (${(result.durationMs / 60000).toFixed(1)} min)\n`);
      return 0;
    }));
}
