/** `fedstream status`: the live state of a pipeline from its Kafka topics, once, as JSON, or redrawn every N s. */
import type { Command } from 'commander';
import { ConfigError, rootLogger } from '../../common/index.ts';
import { runCommand } from '../../service/index.ts';
import { manifestFrom, requireKafka, withPipelineOptions, type PipelineFlags } from '../options.ts';

interface StatusFlags extends PipelineFlags {
  json?: boolean;
  watch?: string | boolean;
}

export function registerStatusCommands(program: Command): void {
  withPipelineOptions(program.command('status').description("the live state of a pipeline from Kafka: the open round, its deadline, updates received of its target and quorum, nodes alive (heartbeats) and missing, the last version and its accuracy"))
    .option('--json', 'print the status as one JSON object (for scripts)')
    .option('--watch [seconds]', 'redraw every N seconds (default 5) until interrupted')
    .action((flags: StatusFlags) => runCommand(async () => {
      const m = manifestFrom(flags);
      requireKafka(m, 'status');
      const every = flags.watch === undefined || flags.watch === false ? undefined : flags.watch === true ? 5 : Number(flags.watch);
      if (every !== undefined && !(Number.isFinite(every) && every >= 1)) throw new ConfigError('--watch', `expected a number of seconds >= 1, got "${String(flags.watch)}"`);
      const { compose, formatStatus, pipelineStatus, onSignals } = await import('../../service/index.ts');
      const logger = rootLogger();
      const wiring = compose({ manifest: m, logger });
      try {
        const o = { manifest: m, transport: await wiring.transport('status'), registry: await wiring.registry(), logger };
        const draw = async (): Promise<void> => {
          const s = await pipelineStatus(o);
          const text = flags.json ? `${JSON.stringify(s)}\n` : formatStatus(s);
          // On a terminal the screen is redrawn in place; piped, each reading follows the last.
          process.stdout.write(every !== undefined && process.stdout.isTTY && !flags.json ? `\x1b[H\x1b[2J${text}` : text);
        };
        await draw();
        if (every === undefined) return 0;
        let stop!: () => void;
        const stopped = new Promise<void>((resolve) => { stop = resolve; });
        const signals = onSignals(() => stop(), { exitAfterFirst: false });
        try {
          for (;;) {
            let timer: NodeJS.Timeout | undefined;
            const tick = new Promise<'tick'>((resolve) => { timer = setTimeout(() => resolve('tick'), every * 1000); });
            const what = await Promise.race([tick, stopped.then(() => 'stop' as const)]);
            clearTimeout(timer);
            if (what === 'stop') return 0;
            await draw();
          }
        } finally {
          signals.dispose();
        }
      } finally {
        await wiring.close();
      }
    }));
}
