/**
 * Helpers for the pipeline tests that run real `fedstream` processes against the real broker.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { createLogger } from '../../src/common/logger.ts';
import { parseManifest, type Manifest } from '../../src/config/manifest.ts';
import { unpackTensors, type ModelVersionRecord } from '../../src/codec/index.ts';
import { createMemoryTransport, MemoryCluster } from '../../src/transport/memory/index.ts';
import { createAggregator } from '../../src/aggregator/index.ts';
import { createNode } from '../../src/node/index.ts';
import { readVersions } from '../support/pipeline-log.ts';
import { ephemeralParticipants, generateKeyPair } from '../../src/protocol/index.ts';
import { deferCleanup, uniqueName } from './helpers.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
export const quietLogger = createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');

/** A small pipeline that trains fast: a 784-32-10 MLP on a few hundred digits per node. */
export function smallManifest(over: Partial<Record<string, unknown>> = {}): Manifest {
  return parseManifest({
    apiVersion: 'fedstream/v1',
    tenant: 'it',
    name: uniqueName('p').toLowerCase().slice(0, 40),
    model: { inputShape: [784], seed: 7, layers: [{ type: 'dense', units: 32, activation: 'relu' }, { type: 'dense', units: 10, activation: 'softmax' }] },
    data: { source: 'mnist', nodes: 3, partition: 'iid', testExamples: 500, trainExamples: 900, seed: 11 },
    training: { epochs: 1, batchSize: 20, learningRate: 0.1 },
    rounds: { count: 3, targetUpdates: 3, minUpdates: 3, timeoutMs: 120_000 },
    ...over,
  });
}

/**
 * Writes the manifest into a new directory. Unless it lists participants of its own, each participant gets a key
 * pair under `<dir>/keys/` (as `fedstream keys generate` writes them: `<id>.key` mode 0600, `<id>.pub`) and the
 * manifest names the directory (`participants.keysDir: keys`); {@link fedstream} hands each process its key file.
 * Participants: the aggregator, node-1..node-N (N: the manifest's MNIST nodes, else 5) and `nodeIds`.
 */
export function writeManifest(m: Manifest, nodeIds: string[] = []): { file: string; dir: string } {
  const dir = mkdtempSync(path.join(tmpdir(), 'fedstream-it-'));
  const file = path.join(dir, `${m.name}.yaml`);
  let out: Manifest = m;
  if (!m.participants) {
    const keys = path.join(dir, 'keys');
    mkdirSync(keys);
    const n = m.data.source === 'mnist' ? m.data.nodes : 5;
    for (const id of new Set(['aggregator', ...Array.from({ length: n }, (_, i) => `node-${i + 1}`), ...nodeIds])) {
      const pair = generateKeyPair();
      writeFileSync(path.join(keys, `${id}.key`), pair.privateKeyPem, { mode: 0o600 });
      chmodSync(path.join(keys, `${id}.key`), 0o600);
      writeFileSync(path.join(keys, `${id}.pub`), pair.publicKeyPem);
    }
    out = { ...m, participants: { enrolment: 'registry', aggregator: 'aggregator', keys: [], keysDir: 'keys' } };
  }
  writeFileSync(file, stringify(out));
  return { file, dir };
}

/** The key file {@link writeManifest} made for the participant a `fedstream` command runs, if any. */
function keyFileFor(args: string[], dir: string): string | undefined {
  const id = args[0] === 'aggregator' ? 'aggregator' : args[0] === 'node' ? args[args.indexOf('--node-id') + 1] : undefined;
  const file = id ? path.join(dir, 'keys', `${id}.key`) : undefined;
  return file && existsSync(file) ? file : undefined;
}

export interface Proc {
  readonly child: ChildProcess;
  readonly logFile: string;
  /** Exit code, or the signal name. */
  readonly exited: Promise<number | string>;
  kill(signal?: NodeJS.Signals): void;
  logTail(lines?: number): string;
}

/** Runs `fedstream <args>` as a real process; its stderr (JSON logs) goes to a file; killed when the test ends. */
export function fedstream(args: string[], { dir, env = {}, name }: { dir: string; env?: Record<string, string>; name: string }): Proc {
  const logFile = path.join(dir, `${name}.log`);
  const log = createWriteStream(logFile);
  const keyFile = keyFileFor(args, dir);
  const child = spawn(process.execPath, [path.join(ROOT, 'bin/fedstream.js'), ...args], {
    cwd: ROOT,
    env: { ...process.env, FEDSTREAM_LOG_LEVEL: 'info', ...(keyFile ? { FEDSTREAM_KEY_FILE: keyFile } : {}), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.pipe(log, { end: false });
  child.stderr!.pipe(log, { end: false });
  const exited = new Promise<number | string>((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  deferCleanup(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); });
  return {
    child,
    logFile,
    exited,
    kill: (signal = 'SIGKILL') => child.kill(signal),
    logTail: (lines = 30) => readLog(logFile).split('\n').slice(-lines).join('\n'),
  };
}

export async function expectExit(p: Proc, code: number | string, what: string): Promise<void> {
  const got = await p.exited;
  if (got !== code) throw new Error(`${what} exited with ${got}, expected ${code}; log tail:\n${p.logTail()}`);
}

export { readAudit, readVersions } from '../support/pipeline-log.ts';

/** The same pipeline, uninterrupted, in this process on the in-memory transport: the versions every recovery must reproduce. */
export async function referenceRun(plain: Manifest, nodeIds: string[]): Promise<ModelVersionRecord[]> {
  const team = ephemeralParticipants(plain, nodeIds);
  const m = team.manifest;
  const cluster = new MemoryCluster();
  const t = createMemoryTransport({ cluster, logger: quietLogger });
  const agg = await createAggregator({ manifest: m, transport: t, logger: quietLogger, evaluate: false, signer: team.signerFor('aggregator') });
  await agg.start();
  const nodes = await Promise.all(nodeIds.map((nodeId) => createNode({ manifest: m, transport: createMemoryTransport({ cluster, logger: quietLogger }), nodeId, logger: quietLogger, signer: team.signerFor(nodeId) })));
  for (const n of nodes) await n.start();
  await agg.done;
  await Promise.all(nodes.map((n) => n.done));
  await Promise.all(nodes.map((n) => n.stop()));
  await agg.stop();
  return readVersions(t, m);
}

/** Largest relative difference between the weights of two versions. */
export function maxRelativeDifference(a: ModelVersionRecord, b: ModelVersionRecord): number {
  const wa = unpackTensors(a.tensors);
  const wb = unpackTensors(b.tensors);
  if (wa.length !== wb.length) return Infinity;
  let max = 0;
  for (let t = 0; t < wa.length; t++) {
    const x = wa[t]!.values;
    const y = wb[t]!.values;
    if (x.length !== y.length) return Infinity;
    for (let i = 0; i < x.length; i++) max = Math.max(max, Math.abs(x[i]! - y[i]!) / Math.max(1e-12, Math.abs(y[i]!)));
  }
  return max;
}

/** Waits until the aggregator's log shows a line matching `pattern` (e.g. a round started). */
export async function waitForLog(p: Proc, pattern: RegExp, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (pattern.test(readLog(p.logFile))) return;
    if (p.child.exitCode !== null || p.child.signalCode !== null) throw new Error(`process exited before logging ${pattern}; tail:\n${p.logTail()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no log line matching ${pattern} within ${timeoutMs} ms; tail:\n${p.logTail()}`);
}

function readLog(file: string): string {
  return existsSync(file) ? readFileSync(file, 'utf8') : '';
}
