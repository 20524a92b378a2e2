/**
 * The compliance report's sha256 chain of versions: each version's hash checked against its parent's presence and
 * the VERSION_PUBLISHED audit event (ClickHouse, query `version_chain`), and, when the models topic is read, against
 * the hash recomputed from the weights there (only versions the aggregator signed count: DESIGN.md invariant 6).
 */
import { unpackTensors, weightsSha256 } from '../../codec/index.ts';
import type { Logger } from '../../common/index.ts';
import type { Manifest } from '../../config/index.ts';
import { participantRegistry, readToEnd, verifyRecord, type ParticipantRegistry } from '../../protocol/index.ts';
import { pipelineTopics } from '../../protocol/index.ts';
import { PayloadReader, decode } from '../../protocol/index.ts';
import type { Transport } from '../../transport/index.ts';
import { num, optNum, str, type Row } from './format.ts';

export type ChainStatus = 'OK' | 'MISMATCH';

/** One version's hash check. `topic` is undefined when the models topic was not read. */
export interface ChainEntry {
  version: number;
  parentVersion: number | null;
  weightsSha256: string;
  /** The parent exists in ClickHouse (or this is the initial model). */
  parentOk: boolean;
  /** The hash announced in the VERSION_PUBLISHED audit event equals the stored one. */
  auditOk: boolean;
  /** The models topic: OK (recomputed hash = stored hash), MISMATCH, MISSING (no such version on the topic). */
  topic?: 'OK' | 'MISMATCH' | 'MISSING';
  /** The hash recomputed from the weights on the models topic. */
  recomputedSha256?: string;
  status: ChainStatus;
  /** What is wrong, for people; empty when OK. */
  problems: string[];
}

/**
 * Reads every ModelVersion on the models topic that the aggregator signed (when the manifest lists participants whose
 * keys can be read: a forged version must not stand in for the real one) and recomputes its weights' sha256.
 */
export async function hashesOnTopic(transport: Transport, m: Manifest, upTo: number | undefined, logger?: Logger): Promise<Map<number, { declared: string; recomputed: string }>> {
  let registry: ParticipantRegistry | undefined;
  try {
    registry = m.participants ? participantRegistry(m) : undefined;
  } catch (err) {
    logger?.warn({ err }, 'the participants\' keys cannot be read: versions on the models topic are re-hashed unverified');
  }
  const reader = new PayloadReader(m.limits);
  const out = new Map<number, { declared: string; recomputed: string }>();
  await readToEnd(transport, pipelineTopics(m).models, (msg) => {
    const { payload, failures } = reader.accept(msg);
    for (const f of failures) logger?.warn({ err: f.error, offset: msg.offset }, 'unreadable record on the models topic');
    if (!payload) return;
    try {
      const v = decode('ModelVersion', payload.bytes);
      if (upTo !== undefined && Number(v.version) > upTo) return;
      const verdict = registry ? verifyRecord(registry, 'ModelVersion', v, payload.bytes, payload.headers) : { ok: true as const };
      if (!verdict.ok) {
        logger?.warn({ code: verdict.code, offset: payload.firstOffset }, `model version ${v.version} on the models topic is not the aggregator's; not re-hashed: ${verdict.reason}`);
        return;
      }
      out.set(Number(v.version), { declared: v.weightsSha256, recomputed: weightsSha256(unpackTensors(v.tensors)) });
    } catch (err) {
      logger?.warn({ err, offset: payload.firstOffset }, 'unreadable model version on the models topic');
    }
  }, { groupPrefix: `${m.tenant}.${m.name}.report` });
  return out;
}

/** One entry per version of `rows` (and per version only on the topic), each OK or MISMATCH with its problems. */
export function checkChain(rows: Row[], topic: Map<number, { declared: string; recomputed: string }> | undefined, upTo: number | undefined): ChainEntry[] {
  const entries: ChainEntry[] = rows.map((r) => {
    const version = num(r.version);
    const sha = String(r.weights_sha256);
    const problems: string[] = [];
    const parentOk = Number(r.parent_ok) === 1;
    const auditOk = Number(r.audit_ok) === 1;
    if (!parentOk) problems.push(`parent version ${str(r.parent_version)} is not in ClickHouse`);
    if (!auditOk) problems.push(r.published_sha256 ? `the VERSION_PUBLISHED audit event announced ${r.published_sha256}` : 'no VERSION_PUBLISHED audit event');
    const e: ChainEntry = { version, parentVersion: optNum(r.parent_version), weightsSha256: sha, parentOk, auditOk, status: 'OK', problems };
    if (topic) {
      const t = topic.get(version);
      if (!t) {
        e.topic = 'MISSING';
        problems.push('not on the models topic');
      } else {
        e.recomputedSha256 = t.recomputed;
        e.topic = t.recomputed === sha && t.declared === sha ? 'OK' : 'MISMATCH';
        if (t.recomputed !== sha) problems.push(`the weights on the models topic hash to ${t.recomputed}`);
        if (t.declared !== t.recomputed) problems.push(`the record on the topic declares ${t.declared}`);
      }
    }
    e.status = problems.length === 0 ? 'OK' : 'MISMATCH';
    return e;
  });
  if (topic) {
    const known = new Set(entries.map((e) => e.version));
    for (const [version, t] of [...topic].sort((a, b) => a[0] - b[0])) {
      if (known.has(version) || (upTo !== undefined && version > upTo)) continue;
      entries.push({
        version, parentVersion: null, weightsSha256: '', parentOk: false, auditOk: false, topic: 'OK', recomputedSha256: t.recomputed,
        status: 'MISMATCH', problems: ['on the models topic but not in ClickHouse (the sink has not written it)'],
      });
    }
  }
  return entries.sort((a, b) => a.version - b.version);
}
