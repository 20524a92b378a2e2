/**
 * FedStream's public API: the package's face (`import … from 'fedstream'`). Everything here comes from a folder's
 * `index.ts`; inner files are not part of the API. The node SDK alone is also `fedstream/node`.
 *
 * ```ts
 * import { createTransport, createAggregator, createNode, createSink } from 'fedstream';
 * const transport = createTransport({ kafka: 'localhost:9092' });
 * const aggregator = await createAggregator({ manifest, transport, logger });
 * ```
 */
export {
  createNode,
  FedNode,
  type CreateNodeOptions,
  type LocalTrainer,
  type LocalTrainInput,
  type LocalTrainResult,
  type NodeOptions,
  type RoundConfig,
} from './node/index.ts';
export {
  createAggregator,
  strategyFor,
  Aggregator,
  FedAvg,
  type AggregatorOptions,
  type AggregatorSummary,
  type CreateAggregatorOptions,
  type AcceptedUpdate,
  type AggregateResult,
  type Aggregation,
  type Rejection,
  type RoundContext,
  type RoundPlan,
  type Strategy,
} from './aggregator/index.ts';
import { Sink, type SinkOptions } from './analytics/index.ts';

export { Sink, runSink, type SinkHealth, type SinkOptions, type SinkState } from './analytics/index.ts';
export { createTransport, type CreateTransportOptions, type Transport } from './transport/index.ts';
export {
  AUDIT_ACTIONS,
  RECORD_KINDS,
  ROUND_CONTROL_KINDS,
  TELEMETRY_KINDS,
  TENSOR_DTYPES,
  type AnyRecord,
  type AuditAction,
  type AuditEventRecord,
  type ContributorRecord,
  type ModelUpdateRecord,
  type ModelVersionRecord,
  type RecordKind,
  type RecordTypes,
  type RoundControlKind,
  type RoundControlRecord,
  type TelemetryEventRecord,
  type TelemetryKind,
  type TensorDtypeSymbol,
  type TensorRecord,
  type NamedTensor,
  type Weights,
  AvroCodec,
  defaultCodec,
  type DecodedMessage,
} from './codec/index.ts';
export { loadManifest, parseManifest, type Manifest } from './config/index.ts';
export {
  ephemeralParticipants, generateKeyPair, loadSigner, participantRegistry, verifyRecord,
  type EphemeralParticipants, type ParticipantRegistry, type Signer, type Verdict,
} from './protocol/index.ts';
export {
  ErrorCodes,
  FedStreamError,
  ConfigError,
  CodecError,
  isFedStreamError,
  toFedStreamError,
  type ErrorCode,
  type FedStreamErrorOptions,
} from './common/index.ts';

/** A ClickHouse sink for `options`, like createNode and createAggregator not started yet (`await sink.start()`); `runSink` creates and starts one. */
export function createSink(options: SinkOptions): Sink {
  return new Sink(options);
}
