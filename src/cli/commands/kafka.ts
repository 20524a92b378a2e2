/** `fedstream kafka start|stop|restart|status`: a local broker for development. */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { FedStreamError } from '../../common/index.ts';
import { runCommand } from '../../service/index.ts';

const SCRIPT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'scripts', 'kafka.mjs');

/** What `scripts/kafka.mjs status` exits with when no broker runs: an answer, not a failure. */
export const KAFKA_NOT_RUNNING_EXIT = 3;

/**
 * Runs scripts/kafka.mjs (plain Node, no dependencies, so `npm run kafka:start` works before anything is built) and
 * resolves its exit code: 0, or 3 from `status` when no broker runs (the script has said so). Any other exit rejects
 * with BROKER_START.
 */
export function runKafkaScript(args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [SCRIPT, ...args], { stdio: 'inherit' });
    child.once('error', (err) => reject(new FedStreamError('BROKER_START', `cannot run ${SCRIPT}: ${err.message}`, { cause: err })));
    child.once('close', (code) => {
      if (code === 0 || (args[0] === 'status' && code === KAFKA_NOT_RUNNING_EXIT)) resolve(code);
      else reject(new FedStreamError('BROKER_START', `node scripts/kafka.mjs ${args.join(' ')} exited ${code}; its output above says why`));
    });
  });
}

export function registerKafkaCommands(program: Command): void {
  const kafka = program.command('kafka').description('a local single-node Kafka broker for development (Apache Kafka jars from Maven Central, KRaft, no Docker)');
  for (const [name, description] of [
    ['start', 'start the broker (reused when already running); prints KAFKA_BROKERS=127.0.0.1:PORT last'],
    ['stop', 'stop the broker'],
    ['restart', 'stop and start on the same port with the same data'],
    ['status', 'say whether the broker runs and where'],
  ] as const) {
    const cmd = kafka.command(name).description(description);
    if (name === 'start') {
      cmd.option('--secure', 'add a SASL_SSL listener, the StandardAuthorizer and SCRAM users (docs/security.md); a state directory stays secured')
        .action((flags: { secure?: boolean }) => runCommand(() => runKafkaScript(flags.secure ? ['start', '--secure'] : ['start'])));
    } else {
      cmd.action(() => runCommand(() => runKafkaScript([name])));
    }
  }
}
