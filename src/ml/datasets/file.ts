import { existsSync, readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { FedStreamError } from '../../common/index.ts';
import { type Dataset, labelArray } from './dataset.ts';

/** A node's own data from a file: CSV, JSON or JSON Lines (docs/node-data.md). */

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
