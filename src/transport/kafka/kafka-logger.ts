/**
 * Routes kafkajs' logs into pino. kafkajs logs connection chatter and group joins at INFO, which is debug
 * detail for us, so its levels shift down one step: ERROR→error, WARN→warn, INFO→debug, DEBUG→trace.
 */
import kafkajs, { type LogEntry, type logCreator, type logLevel as LogLevel } from 'kafkajs';
import type { Logger } from '../../common/index.ts';

// kafkajs is CommonJS and its export list is not statically analysable, so values come from the default import.
const { logLevel } = kafkajs;

const PINO_METHOD: Record<number, 'error' | 'warn' | 'debug' | 'trace'> = {
  [logLevel.ERROR]: 'error',
  [logLevel.WARN]: 'warn',
  [logLevel.INFO]: 'debug',
  [logLevel.DEBUG]: 'trace',
};

/**
 * The kafkajs level that produces exactly what the pino logger keeps: kafkajs formats and passes around every
 * entry at or above its own level, so asking it for less than pino would discard saves work.
 */
export function kafkajsLogLevel(logger: Logger): LogLevel {
  if (logger.isLevelEnabled('trace')) return logLevel.DEBUG;
  if (logger.isLevelEnabled('debug')) return logLevel.INFO;
  if (logger.isLevelEnabled('warn')) return logLevel.WARN;
  if (logger.isLevelEnabled('error')) return logLevel.ERROR;
  return logLevel.NOTHING;
}

/**
 * A kafkajs `logCreator` writing to `logger.child({ component: 'kafkajs', namespace })`.
 *
 * kafkajs' Connection logs every error answer of the broker at ERROR ("Response InitProducerId(key: 22, …)"),
 * including the ones its retrier then rides out (coordinator loading, concurrent transactions, rebalancing).
 * Those become warnings; whatever finally fails reaches the caller as a FedStreamError.
 */
export function pinoLogCreator(logger: Logger): logCreator {
  const base = logger.child({ component: 'kafkajs' });
  const children = new Map<string, Logger>();
  const childFor = (namespace: string): Logger => {
    let child = children.get(namespace);
    if (!child) {
      child = base.child({ namespace });
      children.set(namespace, child);
    }
    return child;
  };
  return () =>
    ({ namespace, level, log }: LogEntry) => {
      let method = PINO_METHOD[level];
      if (!method) return;
      // kafkajs' entry carries its own timestamp, logger name and the message; the rest is structured context
      // (broker, groupId, error text, stack…) that pino keeps as fields.
      const { message, timestamp: _timestamp, logger: _logger, ...extra } = log;
      if (method === 'error' && namespace === 'Connection' && String(message).startsWith('Response ')) method = 'warn';
      childFor(namespace || 'kafkajs')[method](extra, message);
    };
}
