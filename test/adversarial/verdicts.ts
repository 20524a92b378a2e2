/**
 * Verdicts of the adversarial suite: what the pipeline left behind (the aggregator's signed audit trail and versions,
 * the dead-letter topic, the sink's ClickHouse tables, the nodes' logs, the processes' exit codes), and for each
 * attack one of: rejected and audited, crashed, wrongly accepted (or, when no refusal is recorded anywhere, silently
 * dropped, which invariant 3 forbids as much as a crash).
 */
import { existsSync, readFileSync } from 'node:fs';
import type { AuditEventRecord, ModelVersionRecord } from '../../src/codec/index.ts';
import { decode, readToEnd, verifyRecord, type ParticipantRegistry, type PipelineTopics } from '../../src/protocol/index.ts';
import type { Transport } from '../../src/transport/index.ts';
import type { Attack } from './attacks.ts';
import type { Launch } from './kit.ts';

/** `topic/partition/offset`: how every record is named below. */
export type Coord = string;
export const coord = (topic: string, partition: number | string, offset: number | string): Coord => `${topic}/${partition}/${offset}`;

export interface Sent {
  attack: Attack;
  launch: Launch;
  /** The coordinates of each unit's records, as the broker acknowledged them. */
  units: Coord[][];
}

export type VerdictKind = 'rejected and audited' | 'crashed' | 'wrongly accepted' | 'silently dropped';

export interface Verdict {
  name: string;
  kind: VerdictKind;
  /** Where the refusal was found (codes), or what went wrong. */
  detail: string;
}

/** Everything the pipeline recorded. */
export interface Evidence {
  /** Rejections in the aggregator's signed audit trail, by source record: the code. */
  auditRejected: Map<Coord, string>;
  /** UPDATE_ACCEPTED events the aggregator signed, by update id, and the records they name. */
  acceptedById: Map<string, AuditEventRecord>;
  acceptedAt: Set<Coord>;
  /** The aggregator's signed versions, and every update id they count. */
  versions: ModelVersionRecord[];
  contributors: Set<string>;
  /** The dead-letter topic's records, by source. */
  deadLettered: Map<Coord, string>;
  /** The sink's `rejected_updates` rows by source, and the rows it stored as real rounds, versions and audit events. */
  clickhouseRejected: Map<Coord, string>;
  clickhouseStored: Set<Coord>;
  clickhouseEventIds: Set<string>;
  clickhouseVersionShas: Set<string>;
  /** Records the nodes refused or skipped (from their logs). */
  nodeRefused: Map<Coord, string>;
  /**
   * Control and models records an aggregator restarted after the run refused while recovering its state from them: its
   * signed MESSAGE_DEAD_LETTERED events (`refusedBy: recovery`), or its log line for a record it cannot even decode.
   */
  recoveryRefused: Map<Coord, string>;
}

/** The aggregator-signed audit trail, versions, and the dead letters. */
export async function readKafkaEvidence(t: Transport, topics: PipelineTopics, registry: ParticipantRegistry): Promise<Pick<Evidence, 'auditRejected' | 'acceptedById' | 'acceptedAt' | 'versions' | 'contributors' | 'deadLettered' | 'recoveryRefused'>> {
  const auditRejected = new Map<Coord, string>();
  const recoveryRefused = new Map<Coord, string>();
  const acceptedById = new Map<string, AuditEventRecord>();
  const acceptedAt = new Set<Coord>();
  await readToEnd(t, topics.audit, (msg) => {
    let e: AuditEventRecord;
    try {
      e = decode('AuditEvent', msg.value!);
    } catch {
      return;
    }
    if (!verifyRecord(registry, 'AuditEvent', e, msg.value!, msg.headers).ok) return;
    const d = e.details ?? {};
    if ((e.action === 'UPDATE_REJECTED' || e.action === 'MESSAGE_DEAD_LETTERED') && d.sourceTopic !== undefined && d.sourceOffset !== undefined) {
      auditRejected.set(coord(d.sourceTopic, d.sourcePartition ?? '0', d.sourceOffset), d.code ?? e.action);
      if (d.refusedBy === 'recovery') recoveryRefused.set(coord(d.sourceTopic, d.sourcePartition ?? '0', d.sourceOffset), `recovery:${d.code ?? '?'}`);
    }
    if (e.action === 'UPDATE_ACCEPTED') {
      if (e.updateId) acceptedById.set(e.updateId, e);
      if (d.offset !== undefined) acceptedAt.add(coord(topics.updates, d.partition ?? '0', d.offset));
    }
  }, { timeoutMs: 120_000 });
  const versions: ModelVersionRecord[] = [];
  await readToEnd(t, topics.models, (msg) => {
    try {
      const v = decode('ModelVersion', msg.value!);
      if (verifyRecord(registry, 'ModelVersion', v, msg.value!, msg.headers).ok) versions.push(v);
    } catch {
      // the attacker's junk
    }
  });
  const deadLettered = new Map<Coord, string>();
  await readToEnd(t, topics['dead-letter'], (msg) => {
    const source = msg.headers['fedstream-dlq-source']?.toString();
    if (source) deadLettered.set(source, msg.headers['fedstream-dlq-code']?.toString() ?? '?');
  }, { timeoutMs: 120_000 });
  return { auditRejected, recoveryRefused, acceptedById, acceptedAt, versions, contributors: new Set(versions.flatMap((v) => v.contributors.map((c) => c.updateId))), deadLettered };
}

interface LogLine {
  /** A line's stable name, where it has one (the message text is for people and may change). */
  event?: string;
  topic?: string;
  audit?: string;
  source?: string;
  code?: string;
  msg?: string;
  offset?: string;
}

function logLines(file: string): LogLine[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8').split('\n').filter((l) => l.startsWith('{')).flatMap((l) => {
    try {
      return [JSON.parse(l) as LogLine];
    } catch {
      return [];
    }
  });
}

/** Records a node refused (MESSAGE_REFUSED lines) or skipped as unreadable, from its JSON log. */
export function nodeRefusals(logFiles: readonly string[], topics: PipelineTopics): Map<Coord, string> {
  const out = new Map<Coord, string>();
  for (const e of logFiles.flatMap(logLines)) {
    if (e.audit === 'MESSAGE_REFUSED' && e.source) out.set(e.source, `node:${e.code ?? '?'}`);
    else if (e.offset !== undefined && /^unreadable model version/.test(e.msg ?? '')) out.set(coord(topics.models, 0, e.offset), 'node:unreadable');
    else if (e.offset !== undefined && /^unreadable round control/.test(e.msg ?? '')) out.set(coord(topics.control, 0, e.offset), 'node:unreadable');
  }
  return out;
}

/** Control and models records a recovering aggregator's log says it could not decode and ignored. */
export function recoveryUnreadable(logFile: string, topics: PipelineTopics): Map<Coord, string> {
  const out = new Map<Coord, string>();
  for (const e of logLines(logFile)) {
    const topic = e.event === 'record.unreadable' ? e.topic : undefined;
    if ((topic === topics.models || topic === topics.control) && e.offset !== undefined) out.set(coord(topic, 0, e.offset), 'recovery:unreadable');
  }
  return out;
}

function sane(x: number): boolean {
  return Number.isFinite(x) && Math.abs(x) <= 1e9;
}

/** The published metrics that are not finite or not sane, as `version:name=value`. */
export function insaneMetrics(versions: readonly ModelVersionRecord[]): string[] {
  return versions.flatMap((v) => Object.entries(v.metrics).filter(([, x]) => !sane(x)).map(([k, x]) => `v${v.version}:${k}=${x}`));
}

export interface PipelineOutcome {
  /** Processes that did not exit 0, as `name: code`. */
  crashed: string[];
  /** Honest nodes missing from a version's contributors, as `v<n>: node`; any means nodes were stopped or displaced. */
  missing: string[];
  /** Honest updates the aggregator rejected. */
  honestRejected: string[];
  /** What an aggregator restarted after the run did besides saying the pipeline is finished (published, resumed...). */
  recoveryActed: string[];
}

/** An honest node's update as the attacker's watcher read it (an honest node id, a valid signature), where it was read. */
export interface HonestRecord {
  updateId: string;
  at: Coord;
}

/**
 * Honest updates the aggregator refused, as `coord (code)`: a refused record read as an honest node's that the
 * attacker did not send (its acknowledged coordinates, `attackCoords`), whose update id the aggregator never accepted
 * from a record the attacker did not send either. Neither content nor a record's refusal alone can tell: an aggregator
 * whose consumer read records again after an outage (from its last committed offsets; seen beside stress-ng with the
 * broker fenced) accepted a record and later refused the very same record as a duplicate; a replay is byte for byte
 * its original; and a node resends the same records after a failed send (node/runtime.ts).
 */
export function honestRejections(honest: readonly HonestRecord[], ev: Pick<Evidence, 'auditRejected' | 'acceptedById'>, attackCoords: ReadonlySet<Coord>, updatesTopic: string): string[] {
  const acceptedFromHonest = (id: string): boolean => {
    const d = ev.acceptedById.get(id)?.details;
    return d?.offset !== undefined && !attackCoords.has(coord(updatesTopic, d.partition ?? '0', d.offset));
  };
  return honest
    .filter((h) => ev.auditRejected.has(h.at) && !attackCoords.has(h.at) && !acceptedFromHonest(h.updateId))
    .map((h) => `${h.at} (${ev.auditRejected.get(h.at)})`);
}

/** The verdict of one attack. */
export function judge(s: Sent, ev: Evidence, outcome: PipelineOutcome): Verdict {
  const { attack, launch } = s;
  const wrong: string[] = [];
  const found: string[] = [];
  const refusal = (c: Coord): string | undefined => {
    if (attack.judge === 'update') return ev.auditRejected.get(c);
    return ev.clickhouseRejected.get(c) ?? ev.nodeRefused.get(c) ?? ev.auditRejected.get(c);
  };
  const allRefused = s.units.every((u) => u.some((c) => {
    const r = refusal(c);
    if (r) found.push(r);
    return r !== undefined;
  }));
  // Invariant 3: the raw bytes of what was refused are kept in the dead-letter topic.
  const deadLettered = s.units.every((u) => u.some((c) => ev.deadLettered.has(c)));
  if (deadLettered) found.push('dead-lettered');
  // The aggregator's rejections reach ClickHouse through the sink: every refused update, duplicates included, is counted there.
  const counted = attack.judge !== 'update' || s.units.every((u) => u.some((c) => ev.clickhouseRejected.has(c)));
  if (attack.judge === 'update' && counted) found.push('in rejected_updates');
  // Control and versions are also what an aggregator recovers its state from: it must refuse them there too.
  const byRecovery = attack.judge !== 'record' || (attack.topic !== 'control' && attack.topic !== 'models') || s.units.every((u) => u.some((c) => {
    const r = ev.recoveryRefused.get(c);
    if (r) found.push(r);
    return r !== undefined;
  }));

  for (const id of launch.updateIds ?? []) {
    if (attack.judge === 'metric') continue;
    if (ev.contributors.has(id)) wrong.push(`update ${id} counted in a version`);
    else if (ev.acceptedById.has(id)) wrong.push(`update ${id} accepted`);
  }
  if (attack.judge === 'update') {
    for (const c of s.units.flat()) if (ev.acceptedAt.has(c)) wrong.push(`record ${c} accepted`);
  }
  for (const sha of launch.forgedWeights ?? []) {
    if (ev.versions.some((v) => v.weightsSha256 === sha) || ev.clickhouseVersionShas.has(sha)) wrong.push(`forged weights ${sha.slice(0, 12)} adopted`);
  }
  for (const id of launch.forgedEvents ?? []) if (ev.clickhouseEventIds.has(id)) wrong.push(`forged audit event ${id} stored as the aggregator's`);
  if (attack.judge === 'record') {
    for (const c of s.units.flat()) if (ev.clickhouseStored.has(c)) wrong.push(`record ${c} stored as genuine`);
    if (attack.topic === 'control' && outcome.crashed.length === 0 && outcome.missing.length > 0) wrong.push(`honest nodes did not train every round (${outcome.missing.join(', ')})`);
    if ((attack.topic === 'control' || attack.topic === 'models') && outcome.recoveryActed.length > 0) wrong.push(`the recovering aggregator acted: ${outcome.recoveryActed.join('; ')}`);
  }
  if (attack.judge === 'metric') {
    const insane = insaneMetrics(ev.versions);
    if (insane.length > 0) wrong.push(`published ${insane.join(', ')}`);
  }
  if (/pre-empting|duplicate update id|replay/.test(attack.name) && outcome.honestRejected.length > 0) wrong.push(`honest updates rejected: ${outcome.honestRejected.join(', ')}`);

  if (wrong.length > 0) return { name: attack.name, kind: 'wrongly accepted', detail: wrong.join('; ') };

  let audited = allRefused && byRecovery && deadLettered && counted;
  if (attack.judge === 'metric') {
    const id = launch.updateIds![0]!;
    const dropped = ev.acceptedById.get(id)?.details?.metricsDropped;
    audited = dropped !== undefined || allRefused;
    if (dropped !== undefined) found.push(`metricsDropped=${dropped}`);
  }
  if (audited) return { name: attack.name, kind: 'rejected and audited', detail: [...new Set(found)].join(',') };
  if (outcome.crashed.length > 0) return { name: attack.name, kind: 'crashed', detail: outcome.crashed.join(', ') };
  const count = (has: (c: Coord) => boolean) => s.units.filter((u) => !u.some(has)).length;
  const gaps = [
    [count((c) => refusal(c) !== undefined), 'without a recorded refusal'],
    [count((c) => ev.deadLettered.has(c)), 'not dead-lettered'],
    [attack.judge === 'update' ? count((c) => ev.clickhouseRejected.has(c)) : 0, 'not in ClickHouse rejected_updates'],
    [byRecovery ? 0 : count((c) => ev.recoveryRefused.has(c)), 'not refused by the aggregator\'s recovery'],
  ] as const;
  return { name: attack.name, kind: 'silently dropped', detail: gaps.filter(([n]) => n > 0).map(([n, what]) => `${n} of ${s.units.length} payloads ${what}`).join('; ') };
}

/** The verdict of an attack that could not be sent because the pipeline was already down. */
export function notSent(attack: Attack, why: string): Verdict {
  return { name: attack.name, kind: 'crashed', detail: `not sent: ${why}` };
}

/** The one summary line. */
export function summaryLine(verdicts: readonly Verdict[]): string {
  const n = (k: VerdictKind) => verdicts.filter((v) => v.kind === k).length;
  const dropped = n('silently dropped');
  return `${verdicts.length} attacks: ${n('rejected and audited')} rejected and audited, ${n('crashed')} crashed, ${n('wrongly accepted')} wrongly accepted${dropped > 0 ? `, ${dropped} silently dropped` : ''}`;
}
