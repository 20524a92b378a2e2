import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger } from 'pino';

const LEVELS = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

/**
 * The root logger. Level from the argument, else `FEDSTREAM_LOG_LEVEL`, else `LOG_LEVEL`, else info.
 * Components take `logger.child({ component: 'aggregator', pipeline, nodeId })`.
 * Logs go to stderr so that stdout stays free for command output (reports, KAFKA_BROKERS=…).
 */
export function createLogger(level?: string, destination: NodeJS.WritableStream | number = 2): Logger {
  const chosen = (level ?? process.env.FEDSTREAM_LOG_LEVEL ?? process.env.LOG_LEVEL ?? 'info').toLowerCase();
  if (!LEVELS.has(chosen)) throw new Error(`log level "${chosen}" is not one of ${[...LEVELS].join(', ')}`);
  const dest = typeof destination === 'number' ? pino.destination({ fd: destination, sync: true }) : destination;
  return pino({ level: chosen as LevelWithSilent, base: { pid: process.pid }, serializers: { err: pino.stdSerializers.err } }, dest);
}

let root: Logger | undefined;

/** The process-wide root logger, created on first use. */
export function rootLogger(): Logger {
  root ??= createLogger();
  return root;
}

export function setRootLogger(logger: Logger): void {
  root = logger;
}
