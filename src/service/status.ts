/**
 * `fedstream status`: the live state of a pipeline, read from Kafka alone (never ClickHouse, which lags behind the
 * sink): the last control record (the open round, its deadline, target and quorum), the updates the aggregator has
 * not yet counted in a version (from its consumer group's committed offsets on the updates topic: exactly the open
 * round's, as the aggregator commits them with each version, docs/protocol.md), the nodes' heartbeats in the
 * telemetry topic, and the last published version with its metrics. docs/operations.md describes the fields.
 */
import { decodeView, pipelineTopics, readHeartbeats, readLastControl, readModelVersions, naturalCompare, readToEnd, PayloadReader, type ParticipantRegistry } from '../protocol/index.ts';
import type { Logger } from '../common/index.ts';
import { topicPrefix, type Manifest } from '../config/index.ts';
import { nodeIdOf } from '../ml/index.ts';
import type { Transport } from '../transport/index.ts';

export interface PipelineStatus {
  pipeline: string;
  /** `not-started` (no version yet), `running` (a round open), `between-rounds`, `finished`. */
  state: 'not-started' | 'running' | 'between-rounds' | 'finished';
  readAt: string;
  round?: {
    number: number;
    /** The last control record's kind: START, EXTEND, CLOSE, ABANDON, FINISH. */
    kind: string;
    baseVersion: number;
    deadline: string;
    /** ms until the deadline (negative: past it). */
    deadlineInMs: number;
    extensions: number;
    targetUpdates: number;
    minUpdates: number;
    /** Updates of this round in the updates topic not yet counted in a version (received, not necessarily accepted). */
    received: number;
    receivedFrom: string[];
    selectedNodes: string[];
  };
  nodes: {
    /** Freshness window for a heartbeat, ms (rounds.aliveWindowMs). */
    windowMs: number;
    alive: { nodeId: string; lastHeartbeat: string; ageMs: number; state?: string }[];
    /** Expected nodes with no heartbeat within the window. */
    missing: string[];
    /** The nodes expected: the open round's selection, else every node known (registry keys, MNIST partitions, heartbeats heard). */
    expected: string[];
  };
  lastVersion?: { version: number; round: number; strategy: string; createdAt: string; evalAccuracy?: number; trainAccuracy?: number; contributors: number };
}

export interface StatusOptions {
  manifest: Manifest;
  transport: Transport;
  registry: ParticipantRegistry;
  logger: Logger;
  now?: () => number;
}

/** Reads the pipeline's state from its topics (four short reads; the models topic is read without keeping weights). */
export async function pipelineStatus(o: StatusOptions): Promise<PipelineStatus> {
  const m = o.manifest;
  const topics = pipelineTopics(m);
  const now = o.now ?? Date.now;
  const opts = { logger: o.logger, registry: o.registry };
  let last: PipelineStatus['lastVersion'];
  await readModelVersions(o.transport, m, topics.models, {
    ...opts,
    onVersion: (v) => {
      if (last && v.version < last.version) return;
      last = {
        version: v.version, round: Number(v.round), strategy: v.strategy, createdAt: new Date(Number(v.createdAt)).toISOString(), contributors: v.contributors.length,
        ...(v.metrics.eval_accuracy === undefined ? {} : { evalAccuracy: v.metrics.eval_accuracy }),
        ...(v.metrics.train_accuracy === undefined ? {} : { trainAccuracy: v.metrics.train_accuracy }),
      };
    },
  });
  const { control, extensions } = await readLastControl(o.transport, m, topics.control, opts);
  const windowMs = m.rounds.aliveWindowMs;
  const book = await readHeartbeats(o.transport, m, topics.telemetry, windowMs, now());
  const at = now();
  const alive = book.alive(at, windowMs);
  const heard = book.all();

  let round: PipelineStatus['round'];
  const open = control && (control.kind === 'START' || control.kind === 'EXTEND');
  if (control && control.kind !== 'FINISH') {
    const from = open ? await uncountedUpdates(o.transport, m, Number(control.round)) : new Set<string>();
    const deadline = Number(control.deadline);
    const byNode = [...new Set([...from].map((k) => k.split('\u0000')[0]!))].sort(naturalCompare);
    round = {
      number: Number(control.round), kind: control.kind, baseVersion: Number(control.baseVersion),
      deadline: new Date(deadline).toISOString(), deadlineInMs: deadline - at, extensions,
      targetUpdates: control.targetUpdates, minUpdates: control.minUpdates,
      received: from.size, receivedFrom: byNode, selectedNodes: [...control.selectedNodes].sort(naturalCompare),
    };
  }
  const known = new Set<string>([...o.registry.participants('node'), ...(m.data.source === 'mnist' ? Array.from({ length: m.data.nodes }, (_, i) => nodeIdOf(i)) : []), ...heard.map((h) => h.nodeId)]);
  const expected = (round && round.selectedNodes.length > 0 ? round.selectedNodes : [...known]).sort(naturalCompare);
  const aliveSet = new Set(alive);
  const state = !last ? 'not-started' : control?.kind === 'FINISH' ? 'finished' : open ? 'running' : 'between-rounds';
  return {
    pipeline: topicPrefix(m),
    state,
    readAt: new Date(at).toISOString(),
    ...(round ? { round } : {}),
    nodes: {
      windowMs,
      alive: heard.filter((h) => aliveSet.has(h.nodeId)).sort((a, b) => naturalCompare(a.nodeId, b.nodeId))
        .map((h) => ({ nodeId: h.nodeId, lastHeartbeat: new Date(h.at).toISOString(), ageMs: at - h.at, ...(h.state ? { state: h.state } : {}) })),
      // Once the pipeline finished no node is expected to be alive: none is missing.
      missing: state === 'finished' ? [] : expected.filter((n) => !aliveSet.has(n)),
      expected,
    },
    ...(last ? { lastVersion: last } : {}),
  };
}

/**
 * The updates of `round` the aggregator has not counted yet: the updates topic from its group's committed offsets
 * (committed with each version, in the same transaction) to the end. Keys are `nodeId\0updateId`.
 */
async function uncountedUpdates(t: Transport, m: Manifest, round: number): Promise<Set<string>> {
  const topic = pipelineTopics(m).updates;
  const admin = t.admin();
  let from: Map<number, bigint>;
  try {
    from = new Map((await admin.fetchCommittedOffsets(`${topicPrefix(m)}.aggregator`, topic)).map((o) => [o.partition, BigInt(Math.max(0, Number(o.offset)))]));
  } finally {
    await admin.close();
  }
  const out = new Set<string>();
  const reader = new PayloadReader(m.limits);
  await readToEnd(t, topic, (msg) => {
    const got = reader.accept(msg);
    if (!got.payload) return;
    try {
      const u = decodeView('ModelUpdate', got.payload.bytes);
      if (u.tenant === m.tenant && u.pipeline === m.name && Number(u.round) === round) out.add(`${u.nodeId}\u0000${u.updateId}`);
    } catch {
      // Unreadable: the aggregator rejects and audits it; status counts what could be an update.
    }
  }, { from });
  return out;
}

/** The status as lines for a terminal. */
export function formatStatus(s: PipelineStatus): string {
  const lines = [`pipeline ${s.pipeline}: ${s.state} (read ${s.readAt})`];
  const r = s.round;
  if (r) {
    const secs = Math.round(r.deadlineInMs / 1000);
    lines.push(`round ${r.number} (${r.kind}${r.extensions ? `, extension ${r.extensions}` : ''}, from version ${r.baseVersion}): ` +
      `${r.received} of ${r.targetUpdates} updates received, quorum ${r.minUpdates}; deadline ${r.deadline} (${secs >= 0 ? `in ${secs} s` : `${-secs} s ago`})`);
    if (r.receivedFrom.length) lines.push(`  updates from: ${r.receivedFrom.join(', ')}`);
  }
  const n = s.nodes;
  lines.push(`nodes alive (heartbeat within ${n.windowMs / 1000} s): ${n.alive.length}${n.alive.length ? ` - ${n.alive.map((a) => `${a.nodeId}${a.state ? ` ${a.state}` : ''} ${Math.round(a.ageMs / 1000)}s`).join(', ')}` : ''}`);
  if (s.state === 'finished') lines.push('no round open: the pipeline finished (its nodes stop with it)');
  else lines.push(`missing: ${n.missing.length ? n.missing.join(', ') : 'none'}`);
  const v = s.lastVersion;
  lines.push(v ? `last version ${v.version} (round ${v.round}, ${v.strategy}, ${v.contributors} updates, ${v.createdAt})${v.evalAccuracy === undefined ? '' : `: eval accuracy ${v.evalAccuracy.toFixed(4)}`}` : 'no version published yet');
  return `${lines.join('\n')}\n`;
}
