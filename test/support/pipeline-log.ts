/**
 * Reading a pipeline's topics back in tests, on any transport: the versions (chunked payloads reassembled) and
 * the audit trail.
 */
import type { AuditEventRecord, ModelVersionRecord } from '../../src/codec/index.ts';
import type { Manifest } from '../../src/config/manifest.ts';
import { readToEnd } from '../../src/protocol/log.ts';
import { pipelineTopics } from '../../src/protocol/topics.ts';
import { PayloadReader, decode } from '../../src/protocol/wire.ts';
import type { Transport } from '../../src/transport/types.ts';

export async function readVersions(t: Transport, m: Manifest): Promise<ModelVersionRecord[]> {
  const out: ModelVersionRecord[] = [];
  const reader = new PayloadReader(m.limits);
  await readToEnd(t, pipelineTopics(m).models, (msg) => {
    const got = reader.accept(msg);
    if (got.payload) out.push(decode('ModelVersion', got.payload.bytes));
  });
  return out;
}

export async function readAudit(t: Transport, m: Manifest): Promise<AuditEventRecord[]> {
  const out: AuditEventRecord[] = [];
  await readToEnd(t, pipelineTopics(m).audit, (msg) => { out.push(decode('AuditEvent', msg.value!)); });
  return out;
}
