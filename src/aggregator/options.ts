import type { Logger } from 'pino';
import type { Instrumentation } from '../common/index.ts';
import type { ModelVersionRecord } from '../codec/index.ts';
import type { Weights } from '../codec/index.ts';
import type { Manifest } from '../config/index.ts';
import type { ParticipantRegistry, Signer } from '../protocol/index.ts';
import type { Transport } from '../transport/index.ts';
import type { Strategy } from './strategy.ts';
import type { FaultPoint } from './transaction.ts';

export interface AggregatorOptions {
  manifest: Manifest;
  transport: Transport;
  strategy: Strategy;
  logger: Logger;
  /** Weights of version 0, built from the manifest's model (deterministic for its seed). */
  initialWeights: () => Promise<Weights>;
  /** Evaluates a new version on held-out data; its metrics are published with the version. */
  evaluate?: (weights: Weights) => Promise<Record<string, number>>;
  /** Nodes known to the pipeline, for selection (empty: every node that shows up). */
  knownNodes?: string[];
  /**
   * Fault injection for the recovery tests: `kill:<point>:<round>` sends SIGKILL to this process at
   * that point of that round. Points: `mid-round` (after the first accepted update), `before-commit`
   * (transaction sent, not committed). Read from FEDSTREAM_FAULT by the CLI.
   */
  fault?: string | ((point: FaultPoint, round: number) => void);
  /**
   * Start even when another aggregator holds the pipeline (a live member of its consumer group): this one fences it,
   * and the other stops with TRANSPORT_FENCED. Default false: refuse with PIPELINE_HELD (ownership.ts).
   */
  takeOver?: boolean;
  /**
   * The aggregator's private key (protocol/signing.ts): control, version and audit records are signed with it.
   * Required unless the pipeline is in open enrolment with no aggregator key listed.
   */
  signer?: Signer;
  /** The pipeline's participants (default: the manifest's, `participantRegistry`). */
  registry?: ParticipantRegistry;
  /** Where the aggregator's instrumentation events go (metrics, tests); default nowhere. */
  instrumentation?: Instrumentation;
  /** Called after every published version (for progress displays and tests). */
  onVersion?: (v: ModelVersionRecord, info: { round: number; ms: number; participants: number; rejected: number }) => void;
}

export interface AggregatorSummary {
  finalVersion: number;
  /** The pipeline's last decided round (closed or abandoned), by this process or an earlier one: never more than ran. */
  rounds: number;
  /** Rounds this process decided (0 for an aggregator that found the pipeline finished). */
  roundsRun: number;
  versions: number;
}
