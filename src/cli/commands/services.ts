/** `fedstream aggregator` and `fedstream node`: the pipeline's long-running services, run by the one runner. */
import type { Command } from 'commander';
import { rootLogger } from '../../common/index.ts';
import { exitWhenIdle, runCommand, runService } from '../../service/index.ts';
import { manifestFrom, metricsFrom, requireKafka, signerFrom, withMetricsOptions, withPipelineOptions, type MetricsFlags, type PipelineFlags } from '../options.ts';

const KEY_FILE_HELP = "this participant's Ed25519 private key, a PKCS#8 PEM file of mode 0600 (env FEDSTREAM_KEY_FILE; `fedstream keys generate` makes one)";

export function registerServiceCommands(program: Command): void {
  withMetricsOptions(withPipelineOptions(program.command('aggregator').description('run the aggregator: rounds, validation, model versions (exits 0 after the last round)')))
    .option('--target-updates <n>', 'override rounds.targetUpdates: a round closes as soon as this many updates are accepted (env FEDSTREAM_TARGET_UPDATES)')
    .option('--min-updates <n>', 'override rounds.minUpdates: the quorum a round needs at its deadline (env FEDSTREAM_MIN_UPDATES)')
    .option('--round-timeout-ms <ms>', 'override rounds.timeoutMs: how long a round waits for its target (env FEDSTREAM_ROUND_TIMEOUT_MS)')
    .option('--target-alive-nodes [bool]', 'override rounds.targetAliveNodes: size each round\'s target to the nodes alive (heartbeats), never below the quorum (env FEDSTREAM_TARGET_ALIVE_NODES)')
    .option('--no-evaluate', 'do not evaluate versions on held-out data')
    .option('--take-over', 'start even if another aggregator runs this pipeline: fence it (it exits with code 3); without it, refuse (exit code 4)')
    .option('--key-file <file>', KEY_FILE_HELP)
    .action((flags: PipelineFlags & MetricsFlags & { evaluate: boolean; takeOver?: boolean; keyFile?: string }) => runCommand(async () => {
      const m = manifestFrom(flags);
      requireKafka(m, 'aggregator');
      const { compose } = await import('../../service/index.ts');
      const logger = rootLogger();
      const signer = signerFrom(flags.keyFile);
      const metrics = await metricsFrom(flags, { role: 'aggregator', manifest: m });
      const aggregator = await compose({ manifest: m, logger }).aggregator({
        evaluate: flags.evaluate, fault: process.env.FEDSTREAM_FAULT, takeOver: flags.takeOver === true, ...(signer ? { signer } : {}),
        ...(metrics.instrumentation ? { instrumentation: metrics.instrumentation } : {}),
      });
      metrics.watch(aggregator);
      let outcome;
      try {
        outcome = await runService(aggregator, { logger });
      } catch (err) {
        // A fenced or failed aggregator exits with its code even if a client library left a timer behind.
        exitWhenIdle();
        throw err;
      } finally {
        await metrics.close();
      }
      if (outcome.kind !== 'done') return;
      // The rounds the pipeline decided (never the manifest's count), and how many of them this run decided.
      process.stdout.write(`aggregator finished: version=${outcome.result.finalVersion} rounds=${outcome.result.rounds} (${outcome.result.roundsRun} in this run)\n`);
      exitWhenIdle();
    }));

  withMetricsOptions(withPipelineOptions(program.command('node').description('run a node: follow rounds, train on local data, publish updates and telemetry')))
    .requiredOption('--node-id <id>', 'this node\'s id (for MNIST pipelines, node-1..node-N picks the partition)')
    .option('--data <file>', 'local data file (CSV, JSON or JSON Lines; docs/node-data.md) instead of the manifest\'s data')
    .option('--backend <name>', 'tfjs backend: tensorflow, wasm or cpu (env FEDSTREAM_TFJS_BACKEND)')
    .option('--heartbeat-ms <ms>', 'heartbeat interval', '5000')
    .option('--key-file <file>', KEY_FILE_HELP)
    .action((flags: PipelineFlags & MetricsFlags & { nodeId: string; data?: string; backend?: 'tensorflow' | 'wasm' | 'cpu'; heartbeatMs: string; keyFile?: string }) => runCommand(async () => {
      const m = manifestFrom(flags);
      requireKafka(m, 'node');
      const { compose } = await import('../../service/index.ts');
      const logger = rootLogger();
      const signer = signerFrom(flags.keyFile);
      const metrics = await metricsFrom(flags, { role: 'node', manifest: m, nodeId: flags.nodeId });
      const node = await compose({ manifest: m, logger }).node(flags.nodeId, {
        ...(signer ? { signer } : {}),
        dataPath: flags.data, backend: flags.backend, heartbeatMs: Number(flags.heartbeatMs), fault: process.env.FEDSTREAM_FAULT,
        ...(metrics.instrumentation ? { instrumentation: metrics.instrumentation } : {}),
      });
      metrics.watch(node);
      const outcome = await runService(node, { logger }).finally(() => metrics.close());
      if (outcome.kind !== 'done') return;
      exitWhenIdle();
    }));
}
