/**
 * The sink's intake: one Kafka record in, rows (or a dead-letter record) out, into the batch being filled.
 * Records are reassembled from their chunks, decoded for their metadata only, and mapped to rows by the
 * pure functions of rows.ts. A record that cannot be read is dead-lettered with its reason, counted and
 * logged; it never throws.
 */
import type { AuditEventRecord, ModelVersionRecord } from '../../codec/index.ts';
import { isFedStreamError, toFedStreamError, type FedStreamError } from '../../common/index.ts';
import type { Logger } from '../../common/index.ts';
import type { Limits } from '../../config/index.ts';
import type { PipelineTopics } from '../../protocol/index.ts';
import { PayloadReader, deadLetterRecords, decode, verifyRecord, type ParticipantRegistry, type Payload, type PayloadFailure, type RecordKind, type RecordTypes, type Verdict } from '../../protocol/index.ts';
import type { ProducerRecord, TransportMessage } from '../../transport/index.ts';
import type { Entry, PendingBatch, Source } from './batch.ts';
import {
  auditRow, contributionRows, decidedUpdateId, modelVersionRow, rejectedUpdateRow, roundRow, telemetryRow, unreadableRow, updateRow,
  type RowScope,
} from './rows.ts';
import { SINK_TOPIC_KINDS, type SinkTopicKind } from '../../protocol/index.ts';

// The topic kinds the sink reads are protocol's (the ACLs of the sink role grant exactly those).
export { SINK_TOPIC_KINDS, type SinkTopicKind } from '../../protocol/index.ts';

export interface IntakeOptions {
  scope: RowScope;
  topics: PipelineTopics;
  /** The manifest's hostile-input limits, which bound reassembly (protocol/wire.ts `reassemblerOptions`). */
  limits: Limits;
  /** Chunk size of dead-letter records. */
  chunkSizeBytes: number;
  /** Also dead-letter unreadable records of the updates topic (see SinkOptions.deadLetterUpdates). */
  deadLetterUpdates: boolean;
  log: Logger;
  /** Called once per record that could not be read or stored. */
  onUnreadable: () => void;
  /** The pipeline's participants: updates, control, versions and audit are verified against them before they are stored. */
  registry: ParticipantRegistry;
  /** Called once per record refused as not signed by its writer's key. */
  onRefused: () => void;
}

type ChunkError = Error & { messages?: readonly { offset?: string; partition?: number }[] };

export class Intake {
  private readonly o: IntakeOptions;
  private readonly reader: PayloadReader;
  private readonly topicKinds = new Map<string, SinkTopicKind>();

  constructor(options: IntakeOptions) {
    this.o = options;
    this.reader = new PayloadReader(options.limits);
    for (const kind of SINK_TOPIC_KINDS) this.topicKinds.set(options.topics[kind], kind);
  }

  /** The offset below which a partition holds the first chunk of a payload still incomplete, if any. */
  pendingLowWatermark(topic: string, partition: number): bigint | undefined {
    return this.reader.pendingLowWatermark(topic, partition);
  }

  /** Turns one Kafka record into rows (or a dead-letter record) in `b`. */
  accept(msg: TransportMessage, b: PendingBatch): void {
    b.note(msg);
    const kind = this.topicKinds.get(msg.topic);
    if (!kind) return;
    const { payload, failures } = this.reader.accept(msg);
    for (const f of failures) this.unreadable(b, kind, f, msg);
    if (!payload) return;
    const source: Source = { topic: msg.topic, partition: msg.partition, offset: payload.firstOffset, key: msg.key, bytes: payload.bytes };
    const scope = this.o.scope;
    // Decoded, then verified before anything is stored: what its writer's key did not sign is refused (DESIGN.md invariant 6).
    const verified = <K extends RecordKind>(k: K): RecordTypes[K] | undefined => {
      const value = decode(k, payload.bytes);
      const verdict = verifyRecord(this.o.registry, k, value, payload.bytes, payload.headers);
      if (verdict.ok) return value;
      this.refused(b, kind, verdict, msg, source, payload);
      return undefined;
    };
    try {
      switch (kind) {
        case 'telemetry':
          b.add('telemetry_events', telemetryRow(scope, decode('TelemetryEvent', payload.bytes), source), source);
          break;
        case 'control': {
          const c = verified('RoundControl');
          if (!c) break;
          b.add('rounds', roundRow(scope, c, source), source);
          if (c.kind === 'FINISH') b.finish = true;
          break;
        }
        case 'updates': {
          const u = verified('ModelUpdate');
          if (!u) break;
          b.add('updates', updateRow(scope, u, payload.bytes.length, source), source);
          b.statusIds.add(u.updateId);
          break;
        }
        case 'audit': {
          const e = verified('AuditEvent');
          if (e) this.audit(b, e, source);
          break;
        }
        case 'models': {
          const v = verified('ModelVersion');
          if (v) this.modelVersion(b, v, source);
          break;
        }
      }
    } catch (err) {
      this.unreadable(b, kind, { error: err as Error, bytes: payload.bytes }, msg, source);
    }
  }

  // Every row of a record is made before any is added: a value a column cannot hold (rows.ts) refuses the whole record.
  private audit(b: PendingBatch, e: AuditEventRecord, s: Source): void {
    const row = auditRow(this.o.scope, e, s);
    const rejected = rejectedUpdateRow(this.o.scope, e, s);
    b.add('audit_log', row, s);
    if (rejected) b.add('rejected_updates', rejected, s);
    const decided = decidedUpdateId(e);
    if (decided) b.statusIds.add(decided);
  }

  private modelVersion(b: PendingBatch, v: ModelVersionRecord, s: Source): void {
    const row = modelVersionRow(this.o.scope, v, s);
    const contributions = contributionRows(this.o.scope, v, s);
    b.add('model_versions', row, s);
    for (const c of contributions) b.add('contributions', c, s);
  }

  /**
   * A record its writer's key did not sign: not stored in its table (a forged FINISH does not finish the pipeline for
   * the sink, a forged version is no version, a forged audit event is not in the audit log), but counted, logged as
   * an audit-shaped line and kept in `rejected_updates` with its verdict code, and its raw bytes dead-lettered. An
   * update is the aggregator's to judge: it rejects, audits and dead-letters it, and the sink stores that rejection.
   */
  private refused(b: PendingBatch, kind: SinkTopicKind, v: Extract<Verdict, { ok: false }>, msg: TransportMessage, s: Source, p: Payload): void {
    this.o.onRefused();
    const where = `${p.topic}/${p.partition}/${p.firstOffset}`;
    const owned = kind !== 'updates';
    this.o.log.warn({ audit: 'MESSAGE_DEAD_LETTERED', actor: 'sink', code: v.code, source: where, deadLettered: owned },
      `refused record at ${where}, not stored: ${v.reason}${owned ? '' : ' (the aggregator rejects and dead-letters updates)'}`);
    if (!owned) return;
    b.deadLetters.push(...this.deadLetterRecords(p.bytes, msg.key, v.code, v.reason, where));
    const row = unreadableRow(this.o.scope, { topic: p.topic, partition: p.partition, offset: p.firstOffset, code: v.code, message: v.reason, rawSize: p.bytes.length, eventTime: p.timestamp }, 'refused');
    b.add('rejected_updates', row, s);
  }

  /** Dead-letters the chunked payloads with no new chunk for `maxAgeMs` (default `limits.maxPendingAgeMs`), into `b`. */
  expire(b: PendingBatch, maxAgeMs?: number): void {
    for (const f of this.reader.expire(maxAgeMs)) {
      const m = (f.error as ChunkError).messages?.[0];
      const topic = this.topicOfChunkFailure(f);
      const kind = this.topicKinds.get(topic) ?? 'telemetry';
      this.unreadable(b, kind, f, { topic, partition: m?.partition ?? 0, offset: m?.offset ?? '0', key: null, value: null, headers: {}, timestamp: Date.now() });
    }
  }

  private topicOfChunkFailure(f: PayloadFailure): string {
    // The reader names the topic in the error's details (protocol/wire.ts); models is the likely one otherwise.
    const details = (f.error as FedStreamError).details ?? {};
    return typeof details.topic === 'string' ? details.topic : this.o.topics.models;
  }

  /** A record that cannot be read: dead-lettered (raw bytes, reason headers), counted, logged; never thrown. */
  private unreadable(b: PendingBatch, kind: SinkTopicKind, f: PayloadFailure, msg: TransportMessage, source?: Source): void {
    this.o.onUnreadable();
    const err = isFedStreamError(f.error) ? f.error : toFedStreamError(f.error, 'CODEC_INVALID');
    const first = (f.error as ChunkError).messages?.[0];
    const partition = first?.partition ?? msg.partition;
    const offset = first?.offset ?? source?.offset ?? msg.offset;
    const where = `${msg.topic}/${partition}/${offset}`;
    const owned = kind !== 'updates' || this.o.deadLetterUpdates;
    // One line per record, shaped like an audit event, so that it can be found next to the audit trail.
    this.o.log.warn({ audit: 'MESSAGE_DEAD_LETTERED', actor: 'sink', code: err.code, source: where, bytes: f.bytes.length, deadLettered: owned },
      `unreadable record at ${where}: ${err.message}${owned ? '' : ' (left to the aggregator, which dead-letters updates)'}`);
    if (!owned) return;
    b.deadLetters.push(...this.deadLetterRecords(f.bytes, msg.key, err.code, err.message, where));
    const row = unreadableRow(this.o.scope, { topic: msg.topic, partition, offset, code: err.code, message: err.message, rawSize: f.bytes.length, eventTime: msg.timestamp });
    b.add('rejected_updates', row, { topic: msg.topic, partition, offset, key: msg.key, bytes: f.bytes });
  }

  /** The dead-letter records of raw bytes, with the reason headers (chunked like any payload). */
  deadLetterRecords(bytes: Buffer, key: Buffer | null, code: string, reason: string, where: string): ProducerRecord[] {
    return deadLetterRecords({ topic: this.o.topics['dead-letter'], bytes, key, code, reason, source: where, actor: 'sink', chunkSize: this.o.chunkSizeBytes });
  }

  /** The dead-letter records of rows ClickHouse refused: one per source record (several rows may share one), each counted. */
  poisonRecords(entries: readonly Entry[]): ProducerRecord[] {
    const seen = new Set<string>();
    const records: ProducerRecord[] = [];
    for (const e of entries) {
      const where = `${e.source.topic}/${e.source.partition}/${e.source.offset}`;
      if (seen.has(where)) continue;
      seen.add(where);
      this.o.onUnreadable();
      records.push(...this.deadLetterRecords(e.source.bytes, e.source.key, 'ANALYTICS_QUERY', 'ClickHouse refused the row made from this record', where));
    }
    return records;
  }
}
