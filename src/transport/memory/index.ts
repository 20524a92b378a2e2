/**
 * The in-memory adapter of the transport port: a Kafka-like log inside the process, for unit tests and the
 * embedded demo. It keeps the semantics the pipeline relies on, modelled on Kafka's:
 *
 * - topics of N partitions, each an append-only array; offsets count from 0 and are handed out as strings;
 * - keyed records go to `murmur2(key) % partitions` exactly as Kafka's default partitioner, others round-robin;
 * - a record batch above the topic's `max.message.bytes` (Kafka's default 1048588) is refused, as by the broker;
 * - consumer groups with committed offsets; the partitions of a topic are split range-style among the members
 *   of a group that subscribe to it, and every join or leave is a rebalance that restarts members from the
 *   committed offsets (uncommitted progress is redelivered, as with kafkajs' eager rebalancing);
 * - transactions: records of an open transaction sit in the log but read_committed readers stop at the first of
 *   them (the last stable offset); commit and abort each append a control record (it takes an offset, as Kafka's
 *   transaction markers do); records of aborted transactions are never shown to read_committed readers;
 *   `sendOffsets` takes effect on commit only; an open transaction is aborted by the transaction timeout or when a
 *   new producer with the same transactionalId connects, which also fences the old producer for good.
 *
 * Retention and most topic configs are stored, not enforced. Delivery is asynchronous and event-driven: consumers
 * sleep until the cluster changes (append, commit, join…), never poll.
 */
export { DEFAULT_MAX_MESSAGE_BYTES, MemoryCluster } from './cluster.ts';
export { murmur2, partitionForKey } from './partitioner.ts';
export { createMemoryTransport, type MemoryTransportOptions } from './transport.ts';
