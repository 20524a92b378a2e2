import { Command, Option } from 'commander';
import { createLogger, logFormatFor, setRootLogger } from '../common/index.ts';
import { registerAccessCommands } from './commands/access.ts';
import { registerAnalyticsCommands } from './commands/analytics.ts';
import { registerDemoCommands } from './commands/demo.ts';
import { registerRobustness } from './commands/robustness.ts';
import { registerKafkaCommands } from './commands/kafka.ts';
import { registerKeysCommands } from './commands/keys.ts';
import { registerModelCommands } from './commands/model.ts';
import { registerPipelineCommands } from './commands/pipeline.ts';
import { registerServiceCommands } from './commands/services.ts';
import { registerStatusCommands } from './commands/status.ts';

const logLevelOption = () => new Option('--log-level <level>', 'log level (fatal, error, warn, info, debug, trace, silent)').env('FEDSTREAM_LOG_LEVEL');
const logFormatOption = () => new Option('--log-format <format>', 'log format on stderr: pretty (one readable line per event), json (one JSON object per line), auto (pretty on a terminal, else json; default)').env('FEDSTREAM_LOG_FORMAT');

/** The `fedstream` command with all its subcommands (built without parsing, so tests can inspect it). */
export function buildProgram(): Command {
  const program = new Command();
  program
    .name('fedstream')
    // Program options come before the subcommand, so that a subcommand may take options such as
    // `report --version N` without the program's `--version` catching them.
    .enablePositionalOptions()
    .description('A streaming data pipeline for federated learning: nodes, aggregators, analytics.')
    .version('0.1.0')
    .addOption(logLevelOption())
    .addOption(logFormatOption())
    .hook('preAction', (cmd, action) => {
      const opts = { ...cmd.opts<{ logLevel?: string; logFormat?: string }>(), ...definedOf(action.opts<{ logLevel?: string; logFormat?: string }>()) };
      let format;
      try {
        format = logFormatFor(opts.logFormat, Boolean(process.stderr.isTTY));
      } catch (err) {
        // Before any command runs, so not through runCommand: the same one line and exit code 2.
        process.stderr.write(`fedstream: error [CONFIG_INVALID]: ${(err as Error).message}\n`);
        process.exit(2);
      }
      setRootLogger(createLogger(opts.logLevel, 2, format));
    });

  // In this order in `fedstream --help`.
  registerPipelineCommands(program);
  registerServiceCommands(program);
  registerStatusCommands(program);
  registerAnalyticsCommands(program);
  registerModelCommands(program);
  registerKafkaCommands(program);
  registerAccessCommands(program);
  registerKeysCommands(program);
  registerDemoCommands(program);
  registerRobustness(program.commands.find((c) => c.name() === 'experiment')!);
  // Every subcommand also takes --log-level and --log-format after its name.
  const addLogLevel = (cmd: Command): void => {
    for (const sub of cmd.commands) {
      if (sub.commands.length > 0) addLogLevel(sub);
      else {
        if (!sub.options.some((o) => o.long === '--log-level')) sub.addOption(logLevelOption());
        if (!sub.options.some((o) => o.long === '--log-format')) sub.addOption(logFormatOption());
      }
    }
  };
  addLogLevel(program);
  return program;
}

/** The options a subcommand was given (commander leaves the others undefined). */
function definedOf<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
