/**
 * The adversarial suite (issue 12, item 5; docs/adversarial.md): a pipeline of real processes on the real broker
 * (plain listener, no ACLs, so that the signature and limit layers are what refuses) — an aggregator, 5 nodes and the
 * sink on the embedded ClickHouse, each with its own key — while an attacker holding mallory's key (a registered node:
 * an insider) and a key nobody registered sends every attack of attacks.ts into updates, control, models, audit and
 * telemetry, during the rounds. Each attack gets a verdict (verdicts.ts); the suite asserts 0 crashed, 0 wrongly
 * accepted and every attack rejected and audited, that the pipeline finished all its rounds with every honest node
 * in every version and sane metrics, and prints one line (also in test-results/adversarial.txt).
 *
 * mallory takes part honestly too (one valid update per round, the base weights with 10 examples): rounds target the
 * 5 honest nodes plus mallory, so a round stays open until mallory's own update, which comes after that round's
 * attacks. node-5 starts only after the first round's attacks were sent, so that round 1 is open while they land.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createAnalyticsClient } from '../../src/analytics/index.ts';
import { createLogger } from '../../src/common/logger.ts';
import { loadManifest, parseManifest, type Manifest } from '../../src/config/manifest.ts';
import { createAggregator } from '../../src/aggregator/index.ts';
import { createNode } from '../../src/node/index.ts';
import { decode, ephemeralParticipants, ephemeralSigner, loadSigner, participantRegistry, pipelineTopics, readToEnd, waitForTopics } from '../../src/protocol/index.ts';
import { createMemoryTransport, MemoryCluster } from '../../src/transport/memory/index.ts';
import { createKafkaTransport } from '../../src/transport/kafka/index.ts';
import type { Producer, Transport } from '../../src/transport/index.ts';
import { deferCleanup, kafkaBrokers, uniqueName } from '../integration/helpers.ts';
import { fedstream, writeManifest, type Proc } from '../integration/pipeline-helpers.ts';
import { ATTACKS, type Attack } from './attacks.ts';
import { malloryUpdate, records, type AttackContext, type Unit } from './kit.ts';
import { coord, honestRejections, judge, insaneMetrics, notSent, nodeRefusals, recoveryUnreadable, readKafkaEvidence, summaryLine, type Coord, type Evidence, type PipelineOutcome, type Sent, type Verdict } from './verdicts.ts';
import { Watcher } from './watch.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const HONEST = ['node-1', 'node-2', 'node-3', 'node-4', 'node-5'];
const ROUNDS = 4;
const quiet = createLogger('silent');

/** Limits small enough to be exercised (docs/security.md, "Hostile-input limits"): 128 pending payloads and 8 MiB per topic, expired after 1 s. */
const LIMITS = {
  maxUpdateNorm: 1000,
  maxExamplesPerUpdate: 100_000,
  maxMetricAbs: 1e9,
  maxPayloadBytes: 4 * 1024 * 1024,
  maxPendingBytes: 8 * 1024 * 1024,
  maxPendingPayloads: 128,
  maxPendingAgeMs: 1_000,
};

function manifest(chDir: string): Manifest {
  return parseManifest({
    apiVersion: 'fedstream/v1',
    tenant: 'adv',
    name: uniqueName('p').toLowerCase().slice(0, 40),
    model: { inputShape: [784], seed: 7, layers: [{ type: 'dense', units: 10, activation: 'softmax' }] },
    data: { source: 'mnist', nodes: HONEST.length, partition: 'iid', testExamples: 500, trainExamples: 1500, seed: 5 },
    training: { epochs: 1, batchSize: 20, learningRate: 0.2 },
    rounds: { count: ROUNDS, targetUpdates: HONEST.length + 1, minUpdates: HONEST.length, timeoutMs: 90_000 },
    limits: LIMITS,
    analytics: { path: chDir },
  });
}

interface Running {
  name: string;
  proc: Proc;
}

async function exitCode(r: Running, timeoutMs: number): Promise<number | string> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<string>((resolve) => { timer = setTimeout(() => resolve(`still running after ${timeoutMs} ms`), timeoutMs); });
  try {
    return await Promise.race([r.proc.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Size of a record on the wire, roughly: its value and headers. */
function recordBytes(r: Unit[number]): number {
  const value = r.value === null || r.value === undefined ? 0 : Buffer.byteLength(r.value);
  return value + Object.entries(r.headers ?? {}).reduce((n, [k, v]) => n + k.length + String(v).length, 0);
}

/**
 * Sends one attack and notes the coordinates the broker gave each record. Small units go together, up to 100
 * records and 256 KB per send: well under one produce request, so the records of a send are contiguous on their
 * partition and the acknowledged base offset names each of them (a larger send is split into several requests, which
 * other writers' records may fall between).
 */
async function send(producer: Producer, attack: Attack, ctx: AttackContext): Promise<Sent> {
  const launch = attack.launch(ctx);
  const units: Coord[][] = [];
  const batches: Unit[][] = [];
  let bytes = Infinity;
  for (const unit of launch.units) {
    const size = unit.reduce((n, r) => n + recordBytes(r), 0);
    const last = batches.at(-1);
    if (!last || bytes + size > 256 * 1024 || last.flat().length + unit.length > 100) {
      batches.push([unit]);
      bytes = size;
    } else {
      last.push(unit);
      bytes += size;
    }
  }
  for (const batch of batches) {
    const meta = await producer.send(batch.flat());
    const next = new Map(meta.map((m) => [`${m.topic}/${m.partition}`, BigInt(m.baseOffset ?? '-1')]));
    for (const unit of batch) {
      const coords: Coord[] = [];
      for (const r of unit) {
        const tp = [...next.keys()].find((key) => key.startsWith(`${r.topic}/`));
        const off = tp === undefined ? -1n : next.get(tp)!;
        if (off < 0n) throw new Error(`no offset acknowledged for a record of ${attack.name}`);
        coords.push(`${tp}/${off}`);
        next.set(tp!, off + 1n);
      }
      units.push(coords);
    }
  }
  return { attack, launch, units };
}

/** The end offset of a one-partition topic. */
async function topicEnd(t: Transport, topic: string): Promise<string> {
  const admin = t.admin();
  try {
    return (await admin.fetchTopicOffsets(topic))[0]!.high;
  } finally {
    await admin.close();
  }
}

async function clickhouseEvidence(m: Manifest, chDir: string): Promise<Pick<Evidence, 'clickhouseRejected' | 'clickhouseStored' | 'clickhouseEventIds' | 'clickhouseVersionShas'>> {
  const ch = await createAnalyticsClient({ path: chDir, database: m.analytics.database, logger: quiet });
  const topics = pipelineTopics(m);
  const rows = async <T>(sql: string): Promise<T[]> => (await ch.client.query({ query: sql, query_params: { p: m.name }, format: 'JSONEachRow' })).json<T>();
  try {
    const db = m.analytics.database;
    const rejected = await rows<{ kafka_topic: string; kafka_partition: number; kafka_offset: string; reason_code: string }>(
      `SELECT kafka_topic, kafka_partition, toString(kafka_offset) AS kafka_offset, reason_code FROM ${db}.rejected_updates FINAL WHERE pipeline = {p:String}`);
    const stored = new Set<Coord>();
    for (const [table, topic] of [['rounds', topics.control], ['model_versions', topics.models], ['audit_log', topics.audit]] as const) {
      for (const r of await rows<{ kafka_partition: number; kafka_offset: string }>(`SELECT kafka_partition, toString(kafka_offset) AS kafka_offset FROM ${db}.${table} WHERE pipeline = {p:String}`)) {
        stored.add(coord(topic, r.kafka_partition, r.kafka_offset));
      }
    }
    const events = await rows<{ event_id: string }>(`SELECT event_id FROM ${db}.audit_log WHERE pipeline = {p:String}`);
    const shas = await rows<{ weights_sha256: string }>(`SELECT weights_sha256 FROM ${db}.model_versions WHERE pipeline = {p:String}`);
    return {
      clickhouseRejected: new Map(rejected.map((r) => [coord(r.kafka_topic, r.kafka_partition, r.kafka_offset), `clickhouse:${r.reason_code}`])),
      clickhouseStored: stored,
      clickhouseEventIds: new Set(events.map((e) => e.event_id)),
      clickhouseVersionShas: new Set(shas.map((s) => s.weights_sha256)),
    };
  } finally {
    await ch.close();
  }
}

/** The same pipeline's final eval_accuracy with the 5 honest nodes only, no attacker, in this process on the in-memory transport. */
async function unattackedAccuracy(attacked: Manifest): Promise<number> {
  const plain: Manifest = { ...attacked, rounds: { ...attacked.rounds, targetUpdates: HONEST.length, minUpdates: HONEST.length } };
  const team = ephemeralParticipants(plain, HONEST);
  const cluster = new MemoryCluster();
  const transport = () => createMemoryTransport({ cluster, logger: quiet });
  const agg = await createAggregator({ manifest: team.manifest, transport: transport(), logger: quiet, evaluate: true, signer: team.signerFor('aggregator') });
  await agg.start();
  const nodes = await Promise.all(HONEST.map((nodeId) => createNode({ manifest: team.manifest, transport: transport(), nodeId, logger: quiet, signer: team.signerFor(nodeId) })));
  try {
    for (const n of nodes) await n.start();
    await agg.done;
    await Promise.all(nodes.map((n) => n.done));
  } finally {
    await Promise.all(nodes.map((n) => n.stop()));
    await agg.stop();
  }
  let accuracy = NaN;
  const reader = transport();
  await readToEnd(reader, pipelineTopics(plain).models, (msg) => {
    const v = decode('ModelVersion', msg.value!);
    if (Number(v.version) === ROUNDS) accuracy = v.metrics.eval_accuracy!;
  });
  await reader.close();
  return accuracy;
}

const verdicts: Verdict[] = [];
let line = '';

afterAll(() => {
  if (!line) return;
  console.log(line);
  mkdirSync(path.join(ROOT, 'test-results'), { recursive: true });
  writeFileSync(path.join(ROOT, 'test-results', 'adversarial.txt'), `${line}\n${verdicts.map((v) => `${v.kind}\t${v.name}\t${v.detail}`).join('\n')}\n`);
});

describe('adversarial suite on the real broker', () => {
  it(`${ATTACKS.length} kinds of attack by an insider and an outsider while an aggregator, 5 nodes and the sink run ${ROUNDS} rounds`, async () => {
    expect(ATTACKS.length).toBeGreaterThanOrEqual(30);
    const brokers = kafkaBrokers();
    const chDir = mkdtempSync(path.join(tmpdir(), 'fedstream-adv-ch-'));
    const m = manifest(chDir);
    const { file, dir } = writeManifest(m, ['mallory']);
    const registry = participantRegistry(loadManifest(file));
    const topics = pipelineTopics(m);
    const mallory = loadSigner(path.join(dir, 'keys', 'mallory.key'));
    const outsider = ephemeralSigner();
    const keyIds = Object.fromEntries(registry.keys().map((k) => [k.participant, k.keyId]));

    const procs: Running[] = [];
    const run = (name: string, args: string[]): Running => {
      const r = { name, proc: fedstream([...args, '-p', file, '--kafka', brokers], { dir, name }) };
      procs.push(r);
      return r;
    };
    const node = (id: string) => run(id, ['node', '--node-id', id, '--heartbeat-ms', '2000']);
    const aggregator = run('aggregator', ['aggregator']);
    run('sink', ['sink', '--until-finished', '--batch-ms', '500', '--progress-ms', '0']);
    for (const id of HONEST.slice(0, -1)) node(id);
    /** Stops the attacker as soon as a process died before the pipeline's end (verdicts are settled below). */
    const alive = () => {
      const dead = procs.filter((p) => p.proc.child.exitCode !== null || p.proc.child.signalCode !== null);
      if (dead.length > 0) throw new Error(`exited during the attacks: ${dead.map((p) => p.name).join(', ')}`);
    };

    const t: Transport = createKafkaTransport({ brokers: [brokers], logger: quiet });
    deferCleanup(() => t.close());
    const watcher = new Watcher(t, topics, registry, HONEST);
    const producer = t.producer();
    await producer.connect();
    deferCleanup(() => producer.disconnect());

    const sent: Sent[] = [];
    let interrupted: string | undefined;
    let tag = 0;
    const context = async (round: number): Promise<AttackContext> => ({
      m, topics, mallory, outsider, keyIds, tag: '', honest: watcher.honest, view: await watcher.round(round, 150_000, alive),
    });
    const fire = async (ctx: AttackContext, attacks: readonly Attack[]) => {
      for (const a of attacks) sent.push(await send(producer, a, { ...ctx, tag: `adv-${String(++tag).padStart(2, '0')}` }));
    };
    const malloryContribution = async (ctx: AttackContext) => {
      await producer.send(records({ ...ctx, tag: 'mallory' }, 'updates', 'ModelUpdate', malloryUpdate(ctx), mallory, 'mallory'));
    };
    const wave = (w: 1 | 2 | 3) => [...ATTACKS.filter((a) => a.wave === w && !a.last), ...ATTACKS.filter((a) => a.wave === w && a.last)];
    const started = Date.now();
    try {
      // The aggregator creates the topics; the attacker, like a node, waits for them.
      await waitForTopics(t, [topics.control, topics.models, topics.updates, topics.audit], { timeoutMs: 120_000 });
      await watcher.start();
      // Round 1: its attacks, mallory's update, then her second one for the same round; then node-5 may come.
      const r1 = await context(1);
      const second = wave(1).filter((a) => a.name === 'second update for the same (node, round)');
      await fire(r1, wave(1).filter((a) => !second.includes(a)));
      await malloryContribution(r1);
      await fire(r1, second);
      node(HONEST.at(-1)!);
      // Round 2: replays need an honest update of round 1 and one of round 2 to copy; mallory's contribution is the
      // metrics attack, sent last.
      const r2 = await context(2);
      await watcher.honestUpdates(2, 1, 90_000, alive);
      const metric = wave(2).filter((a) => a.judge === 'metric');
      await fire(r2, wave(2).filter((a) => a.judge !== 'metric'));
      await fire(r2, metric);
      // Round 3: the last forgeries, then mallory's update; round 4: mallory's update only.
      const r3 = await context(3);
      await fire(r3, wave(3));
      await malloryContribution(r3);
      await malloryContribution(await context(4));
    } catch (err) {
      interrupted = (err as Error).message;
    } finally {
      await watcher.stop();
    }

    const codes = new Map(await Promise.all(procs.map(async (p) => [p.name, await exitCode(p, interrupted ? 5_000 : 150_000)] as const)));
    // An aggregator restarted on the finished pipeline recovers its state from control and models, forgeries included:
    // it must refuse them (audited), publish nothing and exit 0.
    const modelsBefore = interrupted ? 0 : await topicEnd(t, topics.models);
    const recovery = interrupted ? undefined : run('aggregator-recovery', ['aggregator']);
    if (recovery) codes.set(recovery.name, await exitCode(recovery, 120_000));
    const recoveryActed = recovery && (await topicEnd(t, topics.models)) !== modelsBefore ? [`published on the models topic after the pipeline finished`] : [];
    // A process still running once the attacker stopped early is not a crash; one still running after the pipeline's end is.
    const crashed = [...codes].filter(([, c]) => c !== 0 && !(interrupted && String(c).startsWith('still running'))).map(([n, c]) => `${n}: ${c}`);
    const ev: Evidence = {
      ...(await readKafkaEvidence(t, topics, registry)),
      ...(codes.get('sink') === 0 ? await clickhouseEvidence(m, chDir) : { clickhouseRejected: new Map(), clickhouseStored: new Set(), clickhouseEventIds: new Set(), clickhouseVersionShas: new Set() }),
      nodeRefused: nodeRefusals(HONEST.map((id) => path.join(dir, `${id}.log`)), topics),
    };
    for (const [c, code] of recoveryUnreadable(path.join(dir, 'aggregator-recovery.log'), topics)) ev.recoveryRefused.set(c, code);
    const attackCoords = new Set(sent.flatMap((s) => s.units.flat()));
    const outcome: PipelineOutcome = {
      crashed,
      missing: ev.versions.filter((v) => v.version > 0).flatMap((v) => HONEST.filter((id) => !v.contributors.some((c) => c.nodeId === id)).map((id) => `v${v.version}: ${id}`)),
      recoveryActed,
      // By the attacker's own coordinates and the aggregator's acceptances, not by content (verdicts.ts).
      honestRejected: honestRejections(watcher.honest.map((h) => ({ updateId: h.update.updateId, at: coord(h.message.topic, h.message.partition, h.message.offset) })), ev, attackCoords, topics.updates),
    };
    verdicts.push(...sent.map((s) => judge(s, ev, outcome)));
    verdicts.push(...ATTACKS.filter((a) => !sent.some((s) => s.attack === a)).map((a) => notSent(a, interrupted ?? 'the attacker stopped')));
    line = summaryLine(verdicts);
    const table = verdicts.map((v) => `  ${v.kind.padEnd(20)} ${v.name}${v.detail ? `  [${v.detail.slice(0, 160)}]` : ''}`).join('\n');
    process.stderr.write(`[adversarial] ${((Date.now() - started) / 1000).toFixed(0)} s${interrupted ? ` (attacker stopped: ${interrupted})` : ''}\n${table}\n`);

    const accuracy = ev.versions.find((v) => Number(v.version) === ROUNDS)?.metrics.eval_accuracy ?? NaN;
    const reference = await unattackedAccuracy(m);
    process.stderr.write(`[adversarial] final accuracy ${accuracy.toFixed(3)}, unattacked ${reference.toFixed(3)}\n`);

    const failed = verdicts.filter((v) => v.kind !== 'rejected and audited');
    expect(failed, `attacks not rejected and audited:\n${table}\nprocesses: ${[...codes].map(([n, c]) => `${n}=${c}`).join(' ')}\n${aggregator.proc.logTail(20)}`).toEqual([]);
    expect(interrupted, 'the attacker could not run every wave').toBeUndefined();
    expect(sent.map((s) => s.attack.name).sort()).toEqual(ATTACKS.map((a) => a.name).sort());
    expect(outcome.crashed).toEqual([]);
    // The pipeline finished all its rounds, every honest node is in every version, and the model learned.
    expect(ev.versions.map((v) => Number(v.version)).sort((a, b) => a - b)).toEqual(Array.from({ length: ROUNDS + 1 }, (_, i) => i));
    expect(outcome.missing).toEqual([]);
    expect(outcome.honestRejected).toEqual([]);
    expect(insaneMetrics(ev.versions)).toEqual([]);
    // The final accuracy is the one of the same pipeline, unattacked and without mallory, within 3 points.
    expect(Math.abs(accuracy - reference)).toBeLessThan(0.03);
  });
});
