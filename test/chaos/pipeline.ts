/**
 * The pipeline under chaos: its manifest (a small model, every round waiting for all nodes), and the supervisor that
 * starts the aggregator, the nodes and the sink as real processes and starts each again after a fault.
 */
import { chmodSync, closeSync, mkdirSync, openSync, readSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import { parseManifest, type Manifest } from '../../src/config/manifest.ts';
import { generateKeyPair } from '../../src/protocol/index.ts';
import { kill9, spawnFedstream, waitFor, type Proc } from './processes.ts';

/** The round length when nothing goes wrong, ms: rounds close at their deadline (see {@link chaosManifest}). */
export const ROUND_MS = 3_000;

/**
 * The chaos pipeline: a 784-10 softmax model on 120 MNIST digits per node. Every round takes the updates of all
 * `nodes` and no other set: `minUpdates` is all of them and `targetUpdates` one more, so a round closes only at its
 * deadline with every node's update (a deadline below quorum extends the round, without limit). Faults then only
 * delay rounds, and the versions are a function of the seed alone. `reference: true` gives the same rounds closing
 * as soon as all nodes are in (`targetUpdates` = all), for the uninterrupted run.
 */
export function chaosManifest(o: { name: string; nodes: number; rounds: number; seed: number; reference?: boolean }): Manifest {
  return parseManifest({
    apiVersion: 'fedstream/v1',
    tenant: 'chaos',
    name: o.name,
    model: { inputShape: [784], seed: o.seed, layers: [{ type: 'dense', units: 10, activation: 'softmax' }] },
    data: { source: 'mnist', nodes: o.nodes, partition: 'iid', testExamples: 100, trainExamples: 120 * o.nodes, seed: o.seed + 1 },
    training: { epochs: 1, batchSize: 20, learningRate: 0.1 },
    rounds: { count: o.rounds, targetUpdates: o.reference ? o.nodes : o.nodes + 1, minUpdates: o.nodes, timeoutMs: ROUND_MS, maxExtensions: 1_000_000 },
  });
}

export type Role = 'aggregator' | 'sink' | `node-${number}`;

/** Writes the manifest with a key pair per participant (`<dir>/keys`, as `fedstream keys generate` does) and a chdb path. */
export function writePipeline(m: Manifest, dir: string, nodeIds: string[]): { file: string; chdbPath: string } {
  const keys = path.join(dir, 'keys');
  mkdirSync(keys, { recursive: true });
  for (const id of ['aggregator', ...nodeIds]) {
    const pair = generateKeyPair();
    writeFileSync(path.join(keys, `${id}.key`), pair.privateKeyPem, { mode: 0o600 });
    chmodSync(path.join(keys, `${id}.key`), 0o600);
    writeFileSync(path.join(keys, `${id}.pub`), pair.publicKeyPem);
  }
  const chdbPath = path.join(dir, 'clickhouse');
  const out = { ...m, participants: { enrolment: 'registry', aggregator: 'aggregator', keys: [], keysDir: 'keys' }, analytics: { ...m.analytics, path: chdbPath } };
  const file = path.join(dir, `${m.name}.yaml`);
  writeFileSync(file, stringify(out));
  return { file, chdbPath };
}

/** Starts and restarts the pipeline's processes; every incarnation keeps its own log file. */
export class Supervisor {
  readonly procs = new Map<Role, Proc>();
  /** Every incarnation, in start order. */
  readonly history: Proc[] = [];
  private readonly counts = new Map<Role, number>();
  private maxRound = 0;
  private readonly readUpTo = new Map<string, number>();

  constructor(private readonly o: { dir: string; file: string; brokers: string; nodeIds: string[] }) {}

  start(role: Role, env: Record<string, string> = {}): Proc {
    const n = (this.counts.get(role) ?? 0) + 1;
    this.counts.set(role, n);
    const { dir, file, brokers } = this.o;
    const common = ['-p', file, '--kafka', brokers];
    const args = role === 'aggregator'
      ? ['aggregator', ...common, '--no-evaluate']
      : role === 'sink'
        ? ['sink', ...common, '--until-finished', '--batch-ms', '300', '--progress-ms', '0']
        : ['node', ...common, '--node-id', role, '--heartbeat-ms', '1000'];
    const keyFile: Record<string, string> = role === 'sink' ? {} : { FEDSTREAM_KEY_FILE: path.join(dir, 'keys', `${role}.key`) };
    const p = spawnFedstream(args, { dir, name: `${role}.${n}`, env: { ...keyFile, ...env } });
    this.procs.set(role, p);
    this.history.push(p);
    return p;
  }

  startAll(aggregatorEnv: Record<string, string> = {}): void {
    this.start('aggregator', aggregatorEnv);
    for (const id of this.o.nodeIds) this.start(id as Role);
    this.start('sink');
  }

  get(role: Role): Proc {
    const p = this.procs.get(role);
    if (!p) throw new Error(`no ${role} process`);
    return p;
  }

  /** SIGKILL of the role's current incarnation (waits for its exit); false if it had already exited. */
  async kill(role: Role): Promise<boolean> {
    const p = this.get(role);
    const was = p.alive();
    await kill9(p);
    return was;
  }

  /** The highest round any node has started training (from the nodes' logs), 0 before the first. */
  round(): number {
    for (const id of this.o.nodeIds) {
      const p = this.procs.get(id as Role);
      if (!p) continue;
      for (const line of this.newLines(p.logFile)) {
        const m = /"event":"training","round":(\d+)/.exec(line);
        if (m) this.maxRound = Math.max(this.maxRound, Number(m[1]));
      }
    }
    return this.maxRound;
  }

  /** Complete lines appended to a log file since the last call (read from where the last call stopped). */
  private newLines(file: string): string[] {
    const at = this.readUpTo.get(file) ?? 0;
    let size: number;
    try {
      size = statSync(file).size;
    } catch {
      return [];
    }
    if (size <= at) return [];
    const buf = Buffer.alloc(size - at);
    const fd = openSync(file, 'r');
    try {
      readSync(fd, buf, 0, buf.length, at);
    } finally {
      closeSync(fd);
    }
    const end = buf.lastIndexOf(0x0a);
    if (end < 0) return [];
    this.readUpTo.set(file, at + end + 1);
    return buf.subarray(0, end).toString('utf8').split('\n');
  }

  /** True once the aggregator exited 0 (the pipeline finished). */
  finished(): boolean {
    return this.procs.get('aggregator')?.child.exitCode === 0;
  }

  /** Waits until a round after `round` has started (or the pipeline finished). */
  async waitRoundAfter(round: number, timeoutMs: number): Promise<number> {
    await waitFor(() => this.round() > round || this.finished() || this.crashed() !== undefined, timeoutMs, () => `a round after ${round} (at ${this.round()})`);
    const bad = this.crashed();
    if (bad) throw new Error(`${bad.name} exited with ${bad.child.exitCode ?? bad.child.signalCode} on its own; log tail:\n${bad.tail()}`);
    return this.round();
  }

  /** A current process that exited with an error (not a SIGKILL the run sent, which the fault restarts at once). */
  crashed(): Proc | undefined {
    for (const p of this.procs.values()) if (p.child.exitCode !== null && p.child.exitCode !== 0) return p;
    return undefined;
  }

  /** Waits for every current process to exit 0 (the end of the run). */
  async waitAllDone(timeoutMs: number): Promise<void> {
    const all = [...this.procs.values()];
    await waitFor(() => all.every((p) => !p.alive()) || this.crashed() !== undefined, timeoutMs,
      () => `the pipeline to finish; still running: ${all.filter((p) => p.alive()).map((p) => `${p.name}\n${p.tail(5)}`).join('\n')}`);
    const bad = all.find((p) => p.child.exitCode !== 0);
    if (bad) throw new Error(`${bad.name} exited with ${bad.child.exitCode ?? bad.child.signalCode}; log tail:\n${bad.tail()}`);
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.procs.values()].map((p) => kill9(p)));
  }
}
