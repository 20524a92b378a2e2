/**
 * The named instrumentation events of the long-running services (after kafkajs' `instrumentationEvents`): the
 * aggregator, nodes and sink emit them; metrics (service/metrics.ts, Prometheus), human log lines and tests
 * observe them. A service is given an {@link Instrumentation} and never knows who listens: no service imports
 * prom-client.
 *
 * Times are in seconds (Prometheus base units), wall clock as Unix milliseconds.
 */
export type InstrumentationEvent =
  /** The aggregator opened a round (START published, or found open on recovery). */
  | { type: 'round.started'; round: number; baseVersion: number; deadline: number; targetUpdates: number; minUpdates: number }
  /** An update was validated and folded into the open round; `foldSeconds` is the strategy's fold alone. */
  | { type: 'update.accepted'; round: number; nodeId: string; foldSeconds: number }
  /** An update was refused; `code` is the rejection code (docs/errors.md, "Rejection codes"). */
  | { type: 'update.rejected'; round: number; nodeId: string | null; code: string }
  /**
   * A round was decided: `closed` (a version published) or `abandoned`. `decisionSeconds` runs from the decision
   * (quorum, target or deadline) to the committed transaction (finish, evaluation, publish); `roundSeconds` from
   * the round's start to the decision.
   */
  | { type: 'round.decided'; round: number; outcome: 'closed' | 'abandoned'; why: string; decisionSeconds: number; roundSeconds: number; accepted: number; rejected: number; version: number; evalAccuracy?: number }
  /** The round reached its deadline below quorum and was extended. */
  | { type: 'round.extended'; round: number; extension: number; accepted: number; minUpdates: number }
  /** An aggregator that (re)started found this version as the latest on the models topic. */
  | { type: 'version.recovered'; version: number }
  /** A model version was published (version 0 included). */
  | { type: 'version.published'; version: number; round: number; at: number }
  /** A node trained a round and published its update. */
  | { type: 'node.trained'; nodeId: string; round: number; trainingSeconds: number; numExamples: number; loss?: number; accuracy?: number; bytes: number }
  /** A node refused a round's config (it skips the round). */
  | { type: 'node.refused'; nodeId: string; round: number; code: string }
  /** The sink inserted and committed a batch. */
  | { type: 'sink.batch'; seconds: number; rows: Record<string, number>; messages: number; deadLettered: number; retries: number; trigger: string };

export interface Instrumentation {
  emit(event: InstrumentationEvent): void;
}

/** Listens to nothing: the default of every service. */
export const noInstrumentation: Instrumentation = { emit: () => undefined };

/** Several listeners as one; a listener that throws is isolated (instrumentation never breaks the service). */
export function fanOut(...listeners: Array<Instrumentation | undefined>): Instrumentation {
  const all = listeners.filter((l): l is Instrumentation => l !== undefined);
  return {
    emit: (e) => {
      for (const l of all) {
        try {
          l.emit(e);
        } catch {
          // An observer's fault is not the service's.
        }
      }
    },
  };
}

/** Seconds since `t0` (from `performance.now()`). */
export function secondsSince(t0: number): number {
  return (performance.now() - t0) / 1000;
}
