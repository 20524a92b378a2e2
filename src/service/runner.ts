/**
 * The one runner: exit codes, SIGINT/SIGTERM and the idle exit, written once for every command and service.
 *
 * The process is injected ({@link RunnerProcess}), so tests drive signals and read exit codes without exiting.
 */
import { FedStreamError, isFedStreamError, type Logger, rootLogger } from '../common/index.ts';
import type { Service } from '../common/index.ts';

/**
 * Exit codes (README, "Exit codes"): 0 ok, 1 runtime failure, 2 bad configuration or usage, 3 fenced (another
 * instance took over: TRANSPORT_FENCED), 4 another aggregator holds the pipeline (PIPELINE_HELD), 130 stopped by a
 * signal. A supervisor should not restart a process that exited 3 or 4: the other instance owns the work.
 */
export const EXIT = { ok: 0, failure: 1, config: 2, fenced: 3, held: 4, interrupted: 130 } as const;

export type ExitSignal = 'SIGINT' | 'SIGTERM';
const SIGNALS: readonly ExitSignal[] = ['SIGINT', 'SIGTERM'];

/** What the runner needs of `process`; tests pass a fake. */
export interface RunnerProcess {
  once(signal: ExitSignal, listener: () => void): unknown;
  removeListener(signal: ExitSignal, listener: () => void): unknown;
  exit(code: number): void;
  exitCode?: number | string | undefined;
  stderr: { write(text: string): unknown };
}

/** The real process (read at call time, so that tests may replace it). */
export function realProcess(): RunnerProcess {
  return process as unknown as RunnerProcess;
}

/** The exit code an error ends a command with: 2 for bad configuration, 3 fenced, 4 pipeline held, else 1. */
export function exitCodeFor(err: unknown): number {
  if (!isFedStreamError(err)) return EXIT.failure;
  switch (err.code) {
    case 'CONFIG_INVALID':
    case 'CONFIG_NOT_FOUND':
    case 'TRANSPORT_NOT_CONFIGURED':
      return EXIT.config;
    case 'TRANSPORT_FENCED':
      return EXIT.fenced;
    case 'PIPELINE_HELD':
      return EXIT.held;
    default:
      return EXIT.failure;
  }
}

/**
 * Runs a command body and sets the exit code (the body's number, else 0); a failure becomes one readable line
 * on stderr (`fedstream: error [CODE]: message`) plus a structured log entry.
 */
export async function runCommand(body: () => Promise<number | void>, proc: RunnerProcess = realProcess(), logger: Logger = rootLogger()): Promise<void> {
  try {
    const code = await body();
    proc.exitCode = code ?? EXIT.ok;
  } catch (err) {
    const e = isFedStreamError(err) ? err : new FedStreamError('INTERNAL', err instanceof Error ? err.message : String(err), { cause: err });
    // Bad input is the user's to fix: one plain line is enough, the structure goes to debug.
    if (exitCodeFor(e) === EXIT.config) logger.debug({ err: e }, e.message);
    else logger.error({ err: e }, e.message);
    proc.stderr.write(`fedstream: error [${e.code}]: ${e.message}\n`);
    proc.exitCode = exitCodeFor(e);
  }
}

export interface SignalHandling {
  /** Resolves with the first signal once its `onFirst` has finished (never resolves without a signal). */
  readonly stopped: Promise<ExitSignal>;
  /** Removes the handlers (a signal after this takes Node's default action). */
  dispose(): void;
}

export interface OnSignalsOptions {
  /** Exit with 130 once `onFirst` has finished (default true); false: the caller goes on (`stopped` resolves). */
  exitAfterFirst?: boolean;
  proc?: RunnerProcess;
}

/**
 * SIGINT/SIGTERM: the first signal runs `onFirst` (a graceful stop), then exits 130 unless told not to;
 * a second signal exits 130 at once.
 */
export function onSignals(onFirst: (signal: ExitSignal) => Promise<void> | void, options: OnSignalsOptions = {}): SignalHandling {
  const proc = options.proc ?? realProcess();
  const exitAfterFirst = options.exitAfterFirst ?? true;
  let first: ExitSignal | undefined;
  let resolveStopped!: (s: ExitSignal) => void;
  const stopped = new Promise<ExitSignal>((res) => { resolveStopped = res; });
  const listeners = SIGNALS.map((signal) => {
    const listener = (): void => {
      if (first !== undefined) {
        proc.exit(EXIT.interrupted);
        return;
      }
      first = signal;
      // The other signal's listener stays installed: it is the "second signal".
      void (async () => {
        try {
          await onFirst(signal);
        } finally {
          if (exitAfterFirst) proc.exit(EXIT.interrupted);
          resolveStopped(signal);
        }
      })().catch(() => undefined);
      // Listen again for a second signal of the same kind.
      proc.once(signal, listener);
    };
    proc.once(signal, listener);
    return [signal, listener] as const;
  });
  return {
    stopped,
    dispose: () => {
      for (const [signal, listener] of listeners) proc.removeListener(signal, listener);
    },
  };
}

/** How {@link runService} ended: the service's result, or the signal that stopped it. */
export type RunOutcome<Result> = { kind: 'done'; result: Result } | { kind: 'signal'; signal: ExitSignal };

export interface RunServiceOptions extends OnSignalsOptions {
  logger?: Logger;
  /** Called on the first signal before the service stops (e.g. a line on stderr). */
  onSignal?: (signal: ExitSignal) => void;
  /** Called once the service has started (e.g. a line saying what it does). */
  onStarted?: () => void;
}

/**
 * Drives a service: start, wait for `done` or a signal, stop. On `done` it stops the service and returns the
 * result (a failure rejects, for {@link runCommand} to turn into an exit code). On the first signal it stops the
 * service and exits 130 (or, with `exitAfterFirst: false`, returns the signal); a second signal exits at once.
 */
export async function runService<Result>(service: Service<Result>, options: RunServiceOptions = {}): Promise<RunOutcome<Result>> {
  const logger = options.logger ?? rootLogger();
  const signals = onSignals(async (signal) => {
    options.onSignal?.(signal);
    logger.info({ signal, service: service.name }, 'stopping');
    await service.stop();
  }, options);
  try {
    await service.start();
    options.onStarted?.();
    const outcome = await Promise.race([
      service.done.then((result): RunOutcome<Result> => ({ kind: 'done', result })),
      signals.stopped.then((signal): RunOutcome<Result> => ({ kind: 'signal', signal })),
    ]);
    if (outcome.kind === 'done') await service.stop();
    return outcome;
  } catch (err) {
    await service.stop().catch(() => undefined);
    throw err;
  } finally {
    signals.dispose();
  }
}

/**
 * A command that finished its work exits even if a client library left a timer or socket behind (kafkajs
 * reconnect timers after a broker outage do): the timer is unref'd, so it fires only if something else
 * would keep the process alive.
 */
export function exitWhenIdle(graceMs = 2_000, proc: RunnerProcess = realProcess()): NodeJS.Timeout {
  const timer = setTimeout(() => proc.exit(Number(proc.exitCode ?? EXIT.ok)), graceMs);
  timer.unref();
  return timer;
}
