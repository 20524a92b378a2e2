import { Command, Option } from 'commander';
import { createLogger, setRootLogger } from '../common/logger.ts';
import { registerCommands } from './commands.ts';

const program = new Command();
program
  .name('fedstream')
  .description('A streaming data pipeline for federated learning: nodes, aggregators, analytics.')
  .version('0.1.0')
  .addOption(new Option('--log-level <level>', 'log level (fatal, error, warn, info, debug, trace, silent)').env('FEDSTREAM_LOG_LEVEL'))
  .hook('preAction', (cmd) => {
    const level = cmd.opts<{ logLevel?: string }>().logLevel;
    setRootLogger(createLogger(level));
  });

registerCommands(program);
await program.parseAsync(process.argv);
