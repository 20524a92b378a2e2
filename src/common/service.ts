/**
 * One shape for every long-running part of FedStream (aggregator, node, sink, and later the HTTP gateway), after
 * platformatic/kafka's base client: a lifecycle, a result, and health as a value. The runner (service/runner.ts) drives
 * any Service the same way: start, wait for `done` or a signal, stop, exit with the right code.
 *
 * It lives in common/ because node, aggregator and sink implement it and stand below service/, which drives them
 * (service/runner.ts) and re-exports it.
 */
export interface ServiceHealth {
  /** True while the service does its work (started, not failed, not stopped). */
  healthy: boolean;
  /** What it is doing: `starting`, `running`, `finished`, `stopped`, `failed`, or a service's own word. */
  state: string;
  /** One line a person can read. */
  detail: string;
  /** Service-specific figures (round, version, lag, ...), for status output and metrics. */
  figures?: Record<string, number | string>;
}

export interface Service<Result = unknown> {
  /** Short name for logs and health output (`aggregator`, `node node-3`, `sink`). */
  readonly name: string;
  /** Connects and begins work; resolves once it is running (not when the work is done). */
  start(): Promise<void>;
  /** Stops work and releases connections; safe to call more than once and before `start`. */
  stop(): Promise<void>;
  /** Resolves with the result when the work is finished; rejects with the error that ended it. */
  readonly done: Promise<Result>;
  /** The current health, as a value (never throws). */
  health(): ServiceHealth;
}
