import { pino, type Logger, type LevelWithSilent } from 'pino';
import { PinoPretty } from 'pino-pretty';
import { ConfigError } from './errors.ts';

export type { Logger } from 'pino';

const LEVELS = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

/** `json`: one pino JSON object per line, for machines. `pretty`: one readable line per event, for people. */
export type LogFormat = 'json' | 'pretty';
export const LOG_FORMATS: readonly string[] = ['json', 'pretty', 'auto'];

/**
 * The format a process logs in: `--log-format`, else FEDSTREAM_LOG_FORMAT, else `auto` — pretty when stderr is a
 * terminal, JSON otherwise (a file, a pipe, a log shipper). Throws ConfigError (path `--log-format`) on anything else.
 */
export function logFormatFor(requested: string | undefined, isTTY: boolean, env: NodeJS.ProcessEnv = process.env): LogFormat {
  const chosen = (requested ?? (env.FEDSTREAM_LOG_FORMAT || 'auto')).toLowerCase();
  if (!LOG_FORMATS.includes(chosen)) throw new ConfigError('--log-format', `"${chosen}" is not one of ${LOG_FORMATS.join(', ')}`);
  return chosen === 'auto' ? (isTTY ? 'pretty' : 'json') : chosen as LogFormat;
}

/** A duration for people: `850 ms`, `3.1 s`. */
export function humanDuration(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

/** Fields the pretty line leaves out: the process's own, and the ones its prefix already says. */
const PREFIX_FIELDS = new Set(['level', 'time', 'pid', 'hostname', 'msg', 'component', 'nodeId', 'namespace', 'pipeline', 'groupId']);

/**
 * The readable line of one log entry (after the time and level pino-pretty writes):
 * `aggregator: round 3 closed (target reached): version 3, … why="…"`. The component (and a node's id, kafkajs'
 * namespace) come first; fields follow as `key=value`, except those the message already states (`round 3`);
 * an error shows its message (and code), not its stack.
 */
export function humanLine(log: Record<string, unknown>): string {
  const who = [log.component, log.nodeId ?? log.namespace].filter((x) => typeof x === 'string' && x.length > 0).join(' ');
  // One event, one line: a newline inside a message is shown as `\n`.
  const msg = typeof log.msg === 'string' ? log.msg.replace(/\r?\n/g, '\\n') : '';
  const fields: string[] = [];
  for (const [key, value] of Object.entries(log)) {
    if (PREFIX_FIELDS.has(key) || value === undefined) continue;
    if (key === 'err' && value && typeof value === 'object') {
      const e = value as { message?: unknown; code?: unknown };
      fields.push(`err=${JSON.stringify(`${typeof e.code === 'string' ? `[${e.code}] ` : ''}${String(e.message ?? '')}`)}`);
      continue;
    }
    const text = typeof value === 'string' ? value : JSON.stringify(value);
    // Already in the message (`round 3`, a string value, a number as a whole word): not repeated.
    if (msg.includes(`${key} ${text}`) || (typeof value === 'string' && value.length > 0 && msg.includes(value))) continue;
    if (typeof value === 'number' && new RegExp(`(^|[^\\w.])${text.replace('.', '\\.')}($|[^\\w.]|\\.(\\s|$))`).test(msg)) continue;
    const shown = text.length > 120 ? `${text.slice(0, 117)}...` : text;
    fields.push(`${key}=${typeof value === 'string' && !/^[\w.:/@-]+$/.test(shown) ? JSON.stringify(shown) : shown}`);
  }
  return `${who ? `${who}: ` : ''}${msg}${fields.length ? `  ${fields.join(' ')}` : ''}`;
}

/**
 * The root logger. Level from the argument, else `FEDSTREAM_LOG_LEVEL`, else `LOG_LEVEL`, else info; format from
 * the argument (see {@link logFormatFor}; default JSON). Components take `logger.child({ component: 'aggregator',
 * pipeline, nodeId })`. Logs go to stderr so that stdout stays free for command output (reports, KAFKA_BROKERS=…).
 */
export function createLogger(level?: string, destination: NodeJS.WritableStream | number = 2, format: LogFormat = 'json'): Logger {
  const chosen = (level ?? process.env.FEDSTREAM_LOG_LEVEL ?? process.env.LOG_LEVEL ?? 'info').toLowerCase();
  if (!LEVELS.has(chosen)) throw new Error(`log level "${chosen}" is not one of ${[...LEVELS].join(', ')}`);
  const options = { level: chosen as LevelWithSilent, base: { pid: process.pid }, serializers: { err: pino.stdSerializers.err } };
  if (format === 'pretty') {
    const colorize = typeof destination === 'number' ? Boolean(process.stderr.isTTY) && destination === 2 : false;
    // In this thread and synchronous (no worker transport): a line is written before the process may exit.
    const stream = PinoPretty({
      destination, sync: true, colorize, translateTime: 'SYS:HH:MM:ss.l', hideObject: true,
      ignore: 'pid,hostname,name', messageFormat: (log) => humanLine(log),
    });
    return pino(options, stream);
  }
  const dest = typeof destination === 'number' ? pino.destination({ fd: destination, sync: true }) : destination;
  return pino(options, dest);
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
