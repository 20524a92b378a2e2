/**
 * The status of updates: once the aggregator's decision on an update is known, the sink writes the update's
 * row again with `status` accepted or rejected (docs/analytics.md, "What goes where"). The decision and the
 * update may reach ClickHouse in either order, through different batches or sink instances; after each
 * batch, the named query `update_status` finds the updates of the batch that now have a decision, and
 * whichever of the two was written second finds the other.
 */
import type { AnalyticsClient } from '../clickhouse/client.ts';
import { toAnalyticsError } from '../clickhouse/errors.ts';
import { runQuery } from '../queries.ts';
import { insertWithToken } from './batch.ts';
import { statusRow, type Row, type RowScope } from './rows.ts';

/**
 * Writes the status row of each of `ids` whose decision is known and not yet stored; `token` names the
 * batch, for deduplication. Returns the number of rows written.
 */
export async function writeStatus(analytics: AnalyticsClient, scope: RowScope, ids: string[], token: string): Promise<number> {
  const rows = await runQuery<Row>(analytics, 'update_status', { tenant: scope.tenant, pipeline: scope.pipeline, ids });
  if (rows.length === 0) return 0;
  const values = rows.map((r) => statusRow(scope, r));
  try {
    await insertWithToken(analytics, 'updates', values, token);
  } catch (err) {
    throw toAnalyticsError(err, `writing the status of ${values.length} updates`);
  }
  return values.length;
}
