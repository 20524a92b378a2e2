/**
 * The analytics module's public face: the ClickHouse client (server over HTTP or embedded chdb),
 * error mapping, and the schema applier. See docs/clickhouse.md.
 */
export {
  createAnalyticsClient,
  toAnalyticsError,
  assertDatabaseName,
  type AnalyticsClient,
  type AnalyticsClientOptions,
  type AnalyticsHealth,
  type AnalyticsKind,
} from './clickhouse/client.ts';
export {
  applySchema,
  defaultSchemaDir,
  loadSchemaFiles,
  resolveSchemaVariables,
  retentionVariables,
  splitStatements,
  substituteVariables,
  SCHEMA_VARIABLE_DEFAULTS,
  type ApplySchemaOptions,
  type ApplySchemaResult,
  type SchemaFile,
  type SchemaVariables,
  type Statement,
} from './clickhouse/ddl.ts';
export { Sink, runSink } from './sink/sink.ts';
export type { FlushInfo, SinkHealth, SinkMetrics, SinkOptions, SinkState } from './sink/types.ts';
export { SINK_TOPIC_KINDS } from './sink/intake.ts';
export {
  SINK_TABLES,
  STATUS_NEUTRAL_CODES,
  auditRow,
  contributionRows,
  countParams,
  decidedUpdateId,
  float,
  floatMap,
  modelVersionRow,
  rejectedUpdateRow,
  roundRow,
  statusRow,
  telemetryRow,
  unreadableRow,
  updateRow,
  type Row,
  type RowScope,
  type RowSource,
  type SinkTable,
  type Unreadable,
} from './sink/rows.ts';
export {
  QUERY_NAMES,
  defaultQueryDir,
  listQueryNames,
  loadQuery,
  parseQueryFile,
  runQuery,
  type QueryFile,
  type QueryName,
  type QueryParameter,
  type QueryParams,
} from './queries.ts';
export {
  complianceReport,
  trainingReport,
  type ChainEntry,
  type ChainStatus,
  type ComplianceReport,
  type ComplianceReportOptions,
  type Report,
  type RetentionEntry,
  type TrainingReport,
  type TrainingReportOptions,
} from './reports/report.ts';
