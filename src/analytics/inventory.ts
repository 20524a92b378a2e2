/**
 * What a ClickHouse database holds, by tenant and pipeline: so that a report on a pipeline with no rows (a typo in the
 * tenant or pipeline name, another database, a sink that never ran) says so instead of printing an empty report.
 */
import { FedStreamError } from '../common/index.ts';
import type { Manifest } from '../config/index.ts';
import type { AnalyticsClient } from './clickhouse/client.ts';
import { toAnalyticsError } from './clickhouse/errors.ts';

export interface PipelineRows {
  tenant: string;
  pipeline: string;
  versions: number;
  auditEvents: number;
  telemetryEvents: number;
}

/** Every (tenant, pipeline) with rows in model_versions, audit_log or telemetry_events, sorted. */
export async function pipelinesInDatabase(a: AnalyticsClient): Promise<PipelineRows[]> {
  const query = `
    SELECT tenant, pipeline, sum(v) AS versions, sum(au) AS auditEvents, sum(t) AS telemetryEvents FROM (
      SELECT tenant, pipeline, count() AS v, 0 AS au, 0 AS t FROM model_versions GROUP BY tenant, pipeline
      UNION ALL SELECT tenant, pipeline, 0, count(), 0 FROM audit_log GROUP BY tenant, pipeline
      UNION ALL SELECT tenant, pipeline, 0, 0, count() FROM telemetry_events GROUP BY tenant, pipeline
    ) GROUP BY tenant, pipeline ORDER BY tenant, pipeline`;
  try {
    const rs = await a.client.query({ query, format: 'JSONEachRow' });
    const rows = await rs.json<Record<string, string | number>>();
    return rows.map((r) => ({ tenant: String(r.tenant), pipeline: String(r.pipeline), versions: Number(r.versions), auditEvents: Number(r.auditEvents), telemetryEvents: Number(r.telemetryEvents) }));
  } catch (err) {
    throw toAnalyticsError(err, 'listing the pipelines in the database');
  }
}

/**
 * Throws ANALYTICS_NO_DATA unless the manifest's tenant and pipeline have rows in `a`'s database; the message names
 * the database and lists the tenants/pipelines it has.
 */
export async function assertPipelineHasData(a: AnalyticsClient, m: Pick<Manifest, 'tenant' | 'name'>): Promise<void> {
  const all = await pipelinesInDatabase(a);
  if (all.some((p) => p.tenant === m.tenant && p.pipeline === m.name)) return;
  const where = `database ${a.database} of ${a.kind === 'embedded' ? `the embedded ClickHouse at ${a.location}` : `ClickHouse at ${a.location}`}`;
  const have = all.length === 0
    ? 'it holds no pipeline at all (has a sink written to it? --clickhouse / --clickhouse-path choose another)'
    : `it holds: ${all.map((p) => `${p.tenant}/${p.pipeline} (${p.versions} versions)`).join(', ')}`;
  throw new FedStreamError('ANALYTICS_NO_DATA', `no data for pipeline ${m.tenant}/${m.name} in ${where}; ${have}`, {
    details: { tenant: m.tenant, pipeline: m.name, database: a.database, location: a.location, pipelines: all.map((p) => `${p.tenant}/${p.pipeline}`) },
  });
}
