/**
 * The service layer's face: the Service shape, the one runner (signals, exit codes) and the composition root
 * (manifest → transports, analytics client, services). Above node, aggregator and analytics; below cli and demo.
 */
export type { Service, ServiceHealth } from '../common/index.ts';
export { asService, type AsServiceOptions, type ComponentService, type Lifecycle } from './lifecycle.ts';
export {
  EXIT,
  exitCodeFor,
  exitWhenIdle,
  onSignals,
  realProcess,
  runCommand,
  runService,
  type ExitSignal,
  type OnSignalsOptions,
  type RunnerProcess,
  type RunOutcome,
  type RunServiceOptions,
  type SignalHandling,
} from './runner.ts';
export {
  compose,
  Composition,
  loadPipeline,
  type AggregatorServiceOptions,
  type CompositionOptions,
  type NodeServiceOptions,
  type SinkServiceOptions,
} from './wiring.ts';
export { EXPORT_FORMATS, exportModel, type ExportFormat, type ExportOptions, type ExportResult, type LineageEntry } from './model-export.ts';
export { formatStatus, pipelineStatus, type PipelineStatus, type StatusOptions } from './status.ts';
export { ProcessMetrics, serveMetrics, type MetricsRole, type MetricsServer, type ProcessMetricsOptions } from './metrics.ts';
