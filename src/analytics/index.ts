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
} from './client.ts';
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
} from './ddl.ts';
