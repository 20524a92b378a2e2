/**
 * The protocol: where node, aggregator and sink meet on Kafka. Topic names (topics.ts is the only place that
 * builds them), FedStream records to and from Kafka records with chunking and dead letters (wire.ts), reading a
 * topic to its end (log.ts), the typed round config (round-config.ts), and who said it: Ed25519 signatures
 * (signing.ts) verified against the pipeline's participant registry (participants.ts). docs/protocol.md describes it.
 */
export * from './access.ts';
export * from './control-order.ts';
export * from './heartbeats.ts';
export * from './log.ts';
export * from './participants.ts';
export * from './round-config.ts';
export * from './signing.ts';
export * from './topics.ts';
export * from './versions.ts';
export * from './wire.ts';
