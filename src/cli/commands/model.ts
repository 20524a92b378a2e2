/** `fedstream model export`: a published version out of the models topic, as TensorFlow.js and safetensors files. */
import type { Command } from 'commander';
import { ConfigError, rootLogger } from '../../common/index.ts';
import { runCommand } from '../../service/index.ts';
import { manifestFrom, requireKafka, withPipelineOptions, type PipelineFlags } from '../options.ts';

interface ExportFlags extends PipelineFlags {
  modelVersion?: string;
  version?: string;
  out: string;
  format: string;
}

export function registerModelCommands(program: Command): void {
  const model = program.command('model').description('the trained model: export a published version for serving');
  withPipelineOptions(model.command('export').description('write a model version (default: the latest) from the models topic as a TensorFlow.js LayersModel (model.json + weights.bin) and safetensors, with lineage.json (parents, updates, strategy, sha256 of the weights and of each file)'))
    // Not `--version`'s short form: the root program's -V/--version takes that name.
    .option('--version <n>', 'the model version to export (default: the latest published)')
    .option('--model-version <n>', 'same as --version')
    .requiredOption('--out <dir>', 'output directory (created; files in it of the same names are replaced)')
    .option('--format <list>', 'tfjs, safetensors or both, comma-separated', 'tfjs,safetensors')
    .action((flags: ExportFlags) => runCommand(async () => {
      const m = manifestFrom(flags);
      requireKafka(m, 'model export');
      const chosen = flags.version ?? flags.modelVersion;
      const where = flags.version !== undefined ? '--version' : '--model-version';
      if (chosen !== undefined && !/^\d+$/.test(chosen.trim())) throw new ConfigError(where, `expected a version number >= 0, got "${chosen}"`);
      const { compose, exportModel, EXPORT_FORMATS } = await import('../../service/index.ts');
      const formats = flags.format.split(',').map((f) => f.trim()).filter(Boolean);
      const bad = formats.find((f) => !(EXPORT_FORMATS as readonly string[]).includes(f));
      if (bad !== undefined || formats.length === 0) throw new ConfigError('--format', `expected ${EXPORT_FORMATS.join(', ')} or both comma-separated, got "${flags.format}"`);
      const logger = rootLogger();
      const wiring = compose({ manifest: m, logger });
      try {
        const r = await exportModel({
          manifest: m, transport: await wiring.transport('export'), registry: await wiring.registry(), logger, out: flags.out,
          formats: formats as typeof EXPORT_FORMATS[number][],
          ...(chosen === undefined ? {} : { version: Number(chosen) }),
        });
        const l = r.lineage as { round: number; strategy: string; weightsSha256: string; metrics: Record<string, number>; contributors: unknown[] };
        const acc = l.metrics.eval_accuracy;
        process.stdout.write(`exported version ${r.version} (round ${l.round}, ${l.strategy}, ${l.contributors.length} updates${acc === undefined ? '' : `, eval accuracy ${acc.toFixed(4)}`}) to ${r.dir}\n`);
        for (const [name, f] of Object.entries(r.files)) process.stdout.write(`  ${name.padEnd(18)} ${String(f.bytes).padStart(10)} bytes  sha256 ${f.sha256}\n`);
        process.stdout.write(`  lineage.json       weights sha256 ${l.weightsSha256}\n`);
        return 0;
      } finally {
        await wiring.close();
      }
    }));
}
