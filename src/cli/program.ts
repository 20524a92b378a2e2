import { Command, Option } from 'commander';
import { createLogger, setRootLogger } from '../common/index.ts';
import { registerAccessCommands } from './commands/access.ts';
import { registerAnalyticsCommands } from './commands/analytics.ts';
import { registerDemoCommands } from './commands/demo.ts';
import { registerKafkaCommands } from './commands/kafka.ts';
import { registerKeysCommands } from './commands/keys.ts';
import { registerModelCommands } from './commands/model.ts';
import { registerPipelineCommands } from './commands/pipeline.ts';
import { registerServiceCommands } from './commands/services.ts';
import { registerStatusCommands } from './commands/status.ts';

const logLevelOption = () => new Option('--log-level <level>', 'log level (fatal, error, warn, info, debug, trace, silent)').env('FEDSTREAM_LOG_LEVEL');

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
    .hook('preAction', (cmd, action) => {
      const level = action.opts<{ logLevel?: string }>().logLevel ?? cmd.opts<{ logLevel?: string }>().logLevel;
      setRootLogger(createLogger(level));
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
  // Every subcommand also takes --log-level after its name.
  const addLogLevel = (cmd: Command): void => {
    for (const sub of cmd.commands) {
      if (sub.commands.length > 0) addLogLevel(sub);
      else if (!sub.options.some((o) => o.long === '--log-level')) sub.addOption(logLevelOption());
    }
  };
  addLogLevel(program);
  return program;
}
