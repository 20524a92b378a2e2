/**
 * Reading a pipeline's topics back in tests, on any transport: the versions (chunked payloads reassembled) and
 * the audit trail.
 */
import type { AuditEventRecord, ModelVersionRecord } from '../../src/codec/index.ts';
import type { Manifest } from '../../src/config/manifest.ts';
import { readToEnd } from '../../src/protocol/log.ts';
import { pipelineTopics } from '../../src/protocol/topics.ts';
import { PayloadReader, decode } from '../../src/protocol/wire.ts';
import { verifyRecord, type ParticipantRegistry } from '../../src/protocol/participants.ts';
import type { Transport } from '../../src/transport/types.ts';

/** Every version in the models topic; with `registry`, only those the aggregator signed (as a node would read them). */
export async function readVersions(t: Transport, m: Manifest, registry?: ParticipantRegistry): Promise<ModelVersionRecord[]> {
  const out: ModelVersionRecord[] = [];
  const reader = new PayloadReader(m.limits);
  await readToEnd(t, pipelineTopics(m).models, (msg) => {
    const got = reader.accept(msg);
    if (!got.payload) return;
    const v = decode('ModelVersion', got.payload.bytes);
    if (!registry || verifyRecord(registry, 'ModelVersion', v, got.payload.bytes, got.payload.headers).ok) out.push(v);
  });
  return out;
}

export async function readAudit(t: Transport, m: Manifest): Promise<AuditEventRecord[]> {
  const out: AuditEventRecord[] = [];
  await readToEnd(t, pipelineTopics(m).audit, (msg) => { out.push(decode('AuditEvent', msg.value!)); });
  return out;
}
