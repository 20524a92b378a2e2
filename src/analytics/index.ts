/**
 * The analytics folder's public face (docs/analytics.md, docs/clickhouse.md): the ClickHouse client (server
 * over HTTP or embedded chdb), error mapping and the schema applier (`clickhouse/`); the sink and its pure
 * record → row mapping (`sink/`); the named queries (`queries.ts`); the reports, their document model and
 * its renderers (`reports/`).
 */
export { toAnalyticsError } from './clickhouse/errors.ts';
export { assertPipelineHasData, pipelinesInDatabase, type PipelineRows } from './inventory.ts';
export { ENDPOINT_FILE, discoverEndpoint, serveEmbedded, type EmbeddedEndpoint, type EndpointInfo } from './clickhouse/endpoint.ts';
export { EXACT_FLOAT_OUTPUT, decodeByType, decodeFloat, parseType, rowsFromCompact } from './clickhouse/floats.ts';
export {
  createAnalyticsClient,
  analyticsOptionsFrom,
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
  queryRows,
  runQuery,
  type QueryFile,
  type QueryName,
  type QueryParameter,
  type QueryParams,
} from './queries.ts';
export { complianceReport, type ChainEntry, type ChainStatus, type ComplianceReport, type ComplianceReportOptions, type RetentionEntry } from './reports/compliance.ts';
export { trainingReport, type TrainingReport, type TrainingReportOptions } from './reports/training.ts';
export {
  findSection,
  withSections,
  type Align,
  type Block,
  type Document,
  type KeyValue,
  type ListBlock,
  type ParagraphBlock,
  type PlotBlock,
  type Report,
  type Section,
  type TableBlock,
  type VerdictBlock,
} from './reports/document.ts';
export { renderMarkdown } from './reports/markdown.ts';
export { renderHtml } from './reports/html.ts';
export { PALETTE, barChart, escapeXml, heatmap, lineChart } from './reports/svg.ts';
export { chartGrid } from './reports/svg-grid.ts';
