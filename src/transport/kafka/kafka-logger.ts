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
 * Broker answers that kafkajs' retrier rides out on a healthy cluster (kafkajs' own texts, src/protocol/error.js:
 * GROUP_LOAD_IN_PROGRESS, GROUP_COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR_FOR_GROUP, CONCURRENT_TRANSACTIONS,
 * REBALANCE_IN_PROGRESS, LEADER_NOT_AVAILABLE, UNKNOWN_TOPIC_OR_PARTITION, NOT_LEADER_FOR_PARTITION,
 * MEMBER_ID_REQUIRED, TOPIC_ALREADY_EXISTS) and CreateTopics' aggregate "Topic creation errors", which kafkajs' admin
 * turns into `false` when every topic already exists (any other creation failure reaches the caller as an error).
 * They are expected, so they log at debug: a warning that looks like a failure on every start teaches people to
 * ignore warnings. test/unit/kafka-logger.test.ts checks each text against kafkajs' table.
 */
export const EXPECTED_BROKER_ERRORS: readonly string[] = [
  "The coordinator is loading and hence can't process requests for this group",
  'The group coordinator is not available',
  'This is not the correct coordinator for this group',
  'The producer attempted to update a transaction while another concurrent operation on the same transaction was ongoing',
  'The group is rebalancing, so a rejoin is needed',
  'There is no leader for this topic-partition as we are in the middle of a leadership election',
  'This server does not host this topic-partition',
  'This server is not the leader for that topic-partition',
  'The group member needs to have a valid member id before actually entering a consumer group',
  'Topic with this name already exists',
  'Topic creation errors',
];

/** True for a kafkajs log entry that only reports an {@link EXPECTED_BROKER_ERRORS} answer. */
export function isExpectedBrokerError(message: string, error: unknown): boolean {
  const text = typeof error === 'string' ? error : '';
  return EXPECTED_BROKER_ERRORS.some((e) => text === e || (text.length === 0 && message.includes(e)));
}

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
 * Those become warnings, and the ones a healthy cluster answers routinely ({@link EXPECTED_BROKER_ERRORS}) debug;
 * whatever finally fails reaches the caller as a FedStreamError.
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
      if ((method === 'error' || method === 'warn') && isExpectedBrokerError(String(message), extra.error)) method = 'debug';
      childFor(namespace || 'kafkajs')[method](extra, message);
    };
}
