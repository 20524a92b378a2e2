/**
 * Avro single-object encoding of the five FedStream records, with schema resolution by fingerprint.
 *
 * A message is `C3 01` + the writer schema's CRC-64-AVRO fingerprint (8 bytes, little-endian) + the Avro
 * binary body (docs/wire-format.md). The codec knows every writer schema in `schemas/avro/*.avsc` (current)
 * and `schemas/avro/history/<Kind>.<label>.avsc` (older versions); a body written with an older schema is
 * resolved into the current one with avsc's `createResolver`, so readers always see the current shape.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import avsc from 'avsc';
import { CodecError } from '../common/errors.ts';
import { checkBinary } from './binary-check.ts';
import { fingerprintFromBytes, fingerprintHex, fingerprintToBytes, schemaFingerprint } from './fingerprint.ts';
import { MAX_LONG, RECORD_KINDS, type AnyRecord, type RecordKind, type RecordTypes } from './records.ts';

type AvroType = avsc.Type;
type Resolver = ReturnType<AvroType['createResolver']>;

export const SINGLE_OBJECT_MAGIC: Readonly<Buffer> = Buffer.from([0xc3, 0x01]);
/** Magic (2 bytes) + fingerprint (8 bytes). */
export const SINGLE_OBJECT_HEADER_SIZE = 10;
export const AVRO_NAMESPACE = 'io.fedstream';

/** A writer schema the codec can read. */
export interface WriterSchemaInfo {
  kind: RecordKind;
  fingerprint: bigint;
  /** 16 hex digits, most significant first (see `fingerprintHex`). */
  fingerprintHex: string;
  /** `current`, or the history label from the file name (`v0` for `ModelUpdate.v0.avsc`). */
  label: string;
  current: boolean;
  /** File it came from, relative to the schema directory, when loaded from disk. */
  source?: string;
}

export interface SchemaSource {
  /** Parsed JSON of an .avsc file: a record schema named `io.fedstream.<Kind>`. */
  schema: unknown;
  /** `current` for the schemas the codec writes; otherwise a history label such as `v0`. */
  label: string;
  source?: string;
}

export interface AvroCodecOptions {
  /** One schema per record kind: what `encode` writes and what `decode` returns. */
  current: SchemaSource[];
  /** Older writer schemas, readable and resolved into the current ones. */
  history?: SchemaSource[];
}

/** Encoding scratch space, reused: encode is synchronous, so no two calls share it at once. */
const scratch = Buffer.allocUnsafe(64 * 1024);

interface Writer extends WriterSchemaInfo {
  type: AvroType;
  fingerprintBytes: Buffer;
  /** Absent for current schemas, which decode without resolution. */
  resolver?: Resolver;
  /** Current schemas: the same type with bytes read as views (decodeView). */
  viewType?: AvroType;
}

/** What `decodeAny` returns: the record plus which writer schema it was written with. */
export type DecodedMessage = AnyRecord & { fingerprint: string; writer: string };

/**
 * Avro longs as exact JS numbers. avsc's built-in long encodes negative values below −2^52 through a float
 * computation that can flip their sign, so longs go through 8-byte two's complement buffers instead.
 */
const EXACT_LONG = avsc.types.LongType.__with({
  fromBuffer: (buf: Buffer): number => {
    const v = buf.readBigInt64LE(0);
    if (v > BigInt(MAX_LONG) || v < -BigInt(MAX_LONG)) throw new Error(`long ${v} is beyond ±${MAX_LONG}`);
    return Number(v);
  },
  toBuffer: (n: number): Buffer => {
    const buf = Buffer.alloc(8);
    buf.writeBigInt64LE(BigInt(n));
    return buf;
  },
  fromJSON: (v: unknown): number => Number(v),
  toJSON: (n: number): number => n,
  isValid: (n: unknown): boolean => typeof n === 'number' && Number.isSafeInteger(n),
  compare: (a: number, b: number): number => (a === b ? 0 : a < b ? -1 : 1),
});

/** The slice of avsc's Tap (its read cursor) that VIEW_BYTES uses. */
interface AvscTap {
  buf: Buffer;
  pos: number;
  readLong(): number;
  _invalidate(): void;
}
const BytesType = avsc.types.BytesType as unknown as new () => avsc.Type;
/**
 * Avro bytes read as a view into the message instead of a copy (avsc's `Tap.readFixed` allocates and copies): for
 * `decodeView`, whose callers consume the record before the message goes away. Same checks as avsc's own read.
 */
const VIEW_BYTES: avsc.Type = new (class extends BytesType {
  _read(tap: AvscTap): Buffer | undefined {
    const len = tap.readLong();
    if (len < 0) {
      tap._invalidate();
      return undefined;
    }
    const pos = tap.pos;
    tap.pos += len;
    return tap.pos > tap.buf.length ? undefined : tap.buf.subarray(pos, pos + len);
  }
})();

const FORSCHEMA_OPTIONS = { wrapUnions: false, omitRecordMethods: true } as const;

function kindOf(schema: unknown, source: string): RecordKind {
  const s = schema as { type?: unknown; name?: unknown; namespace?: unknown } | null;
  const name = typeof s?.name === 'string' ? s.name : undefined;
  const full = name && !name.includes('.') && typeof s?.namespace === 'string' ? `${s.namespace}.${name}` : name;
  const short = full?.startsWith(`${AVRO_NAMESPACE}.`) ? full.slice(AVRO_NAMESPACE.length + 1) : undefined;
  if (s?.type !== 'record' || !short || !(RECORD_KINDS as readonly string[]).includes(short)) {
    throw new CodecError('CODEC_INVALID', `${source}: expected a record schema named ${AVRO_NAMESPACE}.<${RECORD_KINDS.join('|')}>, got ${String(full ?? s?.type)}`, {
      details: { source },
    });
  }
  return short as RecordKind;
}

function parseType(schema: unknown, source: string, views = false): AvroType {
  try {
    // A fresh registry per file: each .avsc stands alone (TensorRecord is defined inline where used).
    const registry: Record<string, avsc.Type> = views ? { long: EXACT_LONG, bytes: VIEW_BYTES } : { long: EXACT_LONG };
    return avsc.Type.forSchema(schema as avsc.Schema, { ...FORSCHEMA_OPTIONS, registry });
  } catch (err) {
    throw new CodecError('CODEC_INVALID', `${source}: not a valid Avro schema: ${(err as Error).message}`, { cause: err, details: { source } });
  }
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Reads and checks the single-object header; returns the writer fingerprint. Throws CODEC_BAD_MAGIC
 * (offset 0) when the marker is wrong and CODEC_TRUNCATED when fewer than 10 bytes are present.
 */
export function readSingleObjectHeader(bytes: Uint8Array | null | undefined): bigint {
  if (!bytes || bytes.length === 0) {
    throw new CodecError('CODEC_TRUNCATED', 'empty message: expected an Avro single-object encoding (C3 01 + fingerprint + body)', {
      details: { offset: 0, length: 0 },
    });
  }
  const head = Math.min(bytes.length, 2);
  for (let i = 0; i < head; i++) {
    if (bytes[i] !== SINGLE_OBJECT_MAGIC[i]) {
      const got = Buffer.from(bytes.subarray(0, 2)).toString('hex');
      const hint = bytes[0] === 0x7b ? ' (it looks like JSON)' : '';
      throw new CodecError('CODEC_BAD_MAGIC', `not an Avro single-object message: starts with ${got}, expected c301${hint}`, {
        details: { offset: 0, expected: 'c301', got },
      });
    }
  }
  if (bytes.length < SINGLE_OBJECT_HEADER_SIZE) {
    throw new CodecError('CODEC_TRUNCATED', `message of ${bytes.length} byte(s) ends inside the 10-byte single-object header`, {
      details: { offset: bytes.length, needed: SINGLE_OBJECT_HEADER_SIZE, length: bytes.length },
    });
  }
  return fingerprintFromBytes(bytes, 2);
}

/** Repository root: the nearest ancestor of this module with `package.json` and `schemas/avro` (works from any cwd, and from dist/). */
export function findRepoRoot(start: string = dirname(fileURLToPath(import.meta.url))): string {
  for (let dir = start; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'schemas', 'avro'))) return dir;
    if (dirname(dir) === dir) {
      throw new CodecError('CODEC_INVALID', `schemas/avro not found in ${start} or any parent directory`, { details: { start } });
    }
  }
}

function listAvsc(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.avsc'))
    .map((e) => join(e.parentPath, e.name))
    .sort();
}

function readSchemaFile(file: string, root: string): unknown {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new CodecError('CODEC_INVALID', `${relative(root, file)}: not valid JSON: ${(err as Error).message}`, { cause: err, details: { source: relative(root, file) } });
  }
}

/** Loads `<dir>/*.avsc` as current schemas and `<dir>/history/**\/<Kind>.<label>.avsc` as older ones. */
export function loadSchemaSources(dir: string = join(findRepoRoot(), 'schemas', 'avro')): AvroCodecOptions {
  const current = readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith('.avsc'))
    .map((e) => e.name)
    .sort()
    .map((name) => {
      const schema = readSchemaFile(join(dir, name), dir);
      const kind = kindOf(schema, name);
      if (name !== `${kind}.avsc`) throw new CodecError('CODEC_INVALID', `${name}: a ${kind} schema must live in ${kind}.avsc`, { details: { source: name } });
      return { schema, label: 'current', source: name };
    });
  const history = listAvsc(join(dir, 'history')).map((file) => {
    const source = relative(dir, file);
    const schema = readSchemaFile(file, dir);
    const kind = kindOf(schema, source);
    const match = /^([A-Za-z]+)\.([\w-]+)\.avsc$/.exec(file.slice(dirname(file).length + 1));
    if (!match || match[1] !== kind || match[2] === 'current') {
      throw new CodecError('CODEC_INVALID', `${source}: history files are named <Kind>.<label>.avsc (e.g. ${kind}.v0.avsc)`, { details: { source } });
    }
    return { schema, label: match[2] as string, source };
  });
  return { current, history };
}

function preview(value: unknown): string {
  if (value === undefined) return 'undefined (missing)';
  if (Buffer.isBuffer(value)) return `<Buffer of ${value.length} bytes>`;
  if (typeof value === 'bigint') return `${value}n`;
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

interface TypeView {
  typeName: string;
  name?: string;
  fields?: { name: string; type: AvroType }[];
  itemsType?: AvroType;
  valuesType?: AvroType;
  types?: AvroType[];
  symbols?: string[];
}
const view = (t: AvroType): TypeView => t as unknown as TypeView;

function describe(type: AvroType): string {
  const t = view(type);
  if (t.typeName === 'enum') return `one of ${(t.symbols ?? []).join('|')}`;
  if (t.typeName.startsWith('union')) return (t.types ?? []).map(describe).join(' or ');
  if (t.typeName === 'record') return `a ${String(t.name).replace(`${AVRO_NAMESPACE}.`, '')} record`;
  if (t.typeName === 'array') return `an array of ${describe(t.itemsType as AvroType)}`;
  if (t.typeName === 'map') return `an object of ${describe(t.valuesType as AvroType)}`;
  if (t.typeName === 'long' || t.typeName === 'abstract:long') return `long (an integer within ±${MAX_LONG})`;
  if (t.typeName === 'int') return 'int (a 32-bit integer)';
  if (t.typeName === 'bytes') return 'bytes (a Buffer)';
  return t.typeName;
}

function appendPath(path: string, type: AvroType, step: string): string {
  const t = view(type);
  if (t.typeName === 'array') return `${path}[${step}]`;
  if (t.typeName === 'map') return /^[A-Za-z_$][\w$]*$/.test(step) ? `${path}.${step}` : `${path}[${JSON.stringify(step)}]`;
  return path ? `${path}.${step}` : step;
}

/** Follows avsc's error path (field names, array indices, map keys) from the root type to a readable path. */
function formatPath(root: AvroType, steps: readonly string[]): string {
  let type: AvroType | undefined = root;
  let path = '';
  for (const step of steps) {
    if (!type) {
      path = path ? `${path}.${step}` : step;
      continue;
    }
    let t = view(type);
    if (t.typeName.startsWith('union')) {
      const branch: AvroType | undefined = (t.types ?? []).find((b) => ['record', 'array', 'map'].includes(view(b).typeName));
      if (branch) {
        type = branch;
        t = view(branch);
      }
    }
    path = appendPath(path, type, step);
    if (t.typeName === 'array') type = t.itemsType;
    else if (t.typeName === 'map') type = t.valuesType;
    else type = t.fields?.find((f) => f.name === step)?.type;
  }
  return path || '<root>';
}

/** One reason a value cannot be encoded: `field` is a path such as `tensors[0].dtype`. */
export interface FieldProblem {
  field: string;
  message: string;
}

/** Properties that the schema does not declare (avsc would drop them silently: usually a typo). */
function undeclaredFields(type: AvroType, value: unknown, path: string, out: FieldProblem[]): void {
  if (value === null || value === undefined) return;
  const t = view(type);
  if (t.typeName === 'record' && typeof value === 'object' && !Array.isArray(value)) {
    const record = value as Record<string, unknown>;
    const fields = t.fields ?? [];
    for (const key of Object.keys(record)) {
      if (record[key] !== undefined && !fields.some((f) => f.name === key)) {
        out.push({ field: path ? `${path}.${key}` : key, message: `not a field of ${describe(type)} (got ${preview(record[key])})` });
      }
    }
    for (const f of fields) undeclaredFields(f.type, record[f.name], path ? `${path}.${f.name}` : f.name, out);
  } else if (t.typeName === 'array' && Array.isArray(value)) {
    value.forEach((item, i) => undeclaredFields(t.itemsType as AvroType, item, `${path}[${i}]`, out));
  } else if (t.typeName === 'map' && typeof value === 'object') {
    for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
      undeclaredFields(t.valuesType as AvroType, item, appendPath(path, type, key), out);
    }
  } else if (t.typeName.startsWith('union')) {
    for (const branch of t.types ?? []) {
      if (branch.isValid(value)) {
        undeclaredFields(branch, value, path, out);
        break;
      }
    }
  }
}

/** Reads and writes the five FedStream records as Avro single-object messages. */
export class AvroCodec {
  private readonly currentByKind = new Map<RecordKind, Writer>();
  private readonly byFingerprint = new Map<bigint, Writer>();

  /** Loads the schemas in `dir` (default: the repository's `schemas/avro`), see `loadSchemaSources`. */
  static fromDirectory(dir?: string): AvroCodec {
    return new AvroCodec(loadSchemaSources(dir));
  }

  /** Without options: the repository's schemas (`loadSchemaSources()`). */
  constructor(options: AvroCodecOptions = loadSchemaSources()) {
    for (const src of options.current) {
      const source = src.source ?? `current ${preview((src.schema as { name?: unknown } | null)?.name)}`;
      const kind = kindOf(src.schema, source);
      if (this.currentByKind.has(kind)) throw new CodecError('CODEC_INVALID', `${source}: a second current ${kind} schema`, { details: { source } });
      const fingerprint = schemaFingerprint(src.schema);
      const writer: Writer = {
        kind,
        fingerprint,
        fingerprintHex: fingerprintHex(fingerprint),
        fingerprintBytes: fingerprintToBytes(fingerprint),
        label: 'current',
        current: true,
        type: parseType(src.schema, source),
        viewType: parseType(src.schema, source, true),
      };
      if (src.source !== undefined) writer.source = src.source;
      this.currentByKind.set(kind, writer);
      this.byFingerprint.set(fingerprint, writer);
    }
    const missing = RECORD_KINDS.filter((k) => !this.currentByKind.has(k));
    if (missing.length) throw new CodecError('CODEC_INVALID', `no current schema for ${missing.join(', ')}`, { details: { missing } });

    for (const src of options.history ?? []) {
      const source = src.source ?? `history ${src.label}`;
      const kind = kindOf(src.schema, source);
      const fingerprint = schemaFingerprint(src.schema);
      // Same canonical form as a known schema: same bytes on the wire, nothing to resolve.
      if (this.byFingerprint.has(fingerprint)) continue;
      const type = parseType(src.schema, source);
      const reader = this.currentByKind.get(kind) as Writer;
      let resolver: Resolver;
      try {
        resolver = reader.type.createResolver(type);
      } catch (err) {
        throw new CodecError('CODEC_INVALID', `${source}: cannot be read as the current ${kind} schema: ${(err as Error).message}`, {
          cause: err,
          details: { source, kind },
        });
      }
      const writer: Writer = {
        kind,
        fingerprint,
        fingerprintHex: fingerprintHex(fingerprint),
        fingerprintBytes: fingerprintToBytes(fingerprint),
        label: src.label,
        current: false,
        type,
        resolver,
      };
      if (src.source !== undefined) writer.source = src.source;
      this.byFingerprint.set(fingerprint, writer);
    }
  }

  /** Fingerprint of the schema `encode` writes for `kind`. */
  fingerprint(kind: RecordKind): bigint {
    return this.current(kind).fingerprint;
  }

  /** Every writer schema this codec can read, current ones first. */
  writerSchemas(): WriterSchemaInfo[] {
    return [...this.byFingerprint.values()]
      .sort((a, b) => Number(b.current) - Number(a.current) || RECORD_KINDS.indexOf(a.kind) - RECORD_KINDS.indexOf(b.kind) || a.label.localeCompare(b.label))
      .map(({ type: _type, resolver: _resolver, fingerprintBytes: _bytes, ...info }) => info);
  }

  /**
   * Field-level problems of `value` against the current schema of `kind` (empty when it can be encoded):
   * wrong types, missing fields, out-of-range longs, unknown enum symbols and undeclared properties.
   */
  problems<K extends RecordKind>(kind: K, value: RecordTypes[K]): FieldProblem[] {
    const { type } = this.current(kind);
    const problems: FieldProblem[] = [];
    type.isValid(value, {
      errorHook: (steps, got, at) => problems.push({ field: formatPath(type, steps), message: `expected ${describe(at)}, got ${preview(got)}` }),
    });
    undeclaredFields(type, value, '', problems);
    return problems;
  }

  /** Single-object encoding of `value` with the current schema of `kind`. Throws CODEC_INVALID naming the field(s). */
  encode<K extends RecordKind>(kind: K, value: RecordTypes[K]): Buffer {
    const writer = this.current(kind);
    const problems = this.problems(kind, value);
    if (problems.length) {
      const list = problems.slice(0, 5).map((p) => `${p.field}: ${p.message}`);
      const more = problems.length > 5 ? `; and ${problems.length - 5} more` : '';
      throw new CodecError('CODEC_INVALID', `cannot encode ${kind}: ${list.join('; ')}${more}`, {
        details: { kind, field: problems[0]?.field, problems },
      });
    }
    // Encode after the header into a reused scratch buffer and copy out; a message that does not fit is
    // encoded again into a buffer of the exact size (avsc reports how many bytes were missing).
    SINGLE_OBJECT_MAGIC.copy(scratch, 0);
    writer.fingerprintBytes.copy(scratch, 2);
    const end = writer.type.encode(value, scratch, SINGLE_OBJECT_HEADER_SIZE);
    if (end >= 0) return Buffer.from(scratch.subarray(0, end));
    const buf = Buffer.allocUnsafe(scratch.length - end);
    scratch.copy(buf, 0, 0, SINGLE_OBJECT_HEADER_SIZE);
    writer.type.encode(value, buf, SINGLE_OBJECT_HEADER_SIZE);
    return buf;
  }

  /**
   * Decodes a single-object message that must hold a `kind` record, resolving older writer schemas into the
   * current one. Every failure is a CodecError: CODEC_BAD_MAGIC, CODEC_UNKNOWN_FINGERPRINT, CODEC_TRUNCATED
   * (with `details.offset`) or CODEC_INVALID (with `details.field`, and `details.offset` where known).
   */
  decode<K extends RecordKind>(kind: K, bytes: Uint8Array | null | undefined): RecordTypes[K] {
    const fingerprint = readSingleObjectHeader(bytes);
    const writer = this.byFingerprint.get(fingerprint);
    if (!writer) throw this.unknownFingerprint(fingerprint, kind);
    if (writer.kind !== kind) {
      throw new CodecError('CODEC_INVALID', `expected a ${kind} message, got a ${writer.kind} (writer schema ${writer.fingerprintHex}, ${writer.label})`, {
        details: { offset: 2, field: '<schema>', kind: writer.kind, expectedKind: kind, fingerprint: writer.fingerprintHex },
      });
    }
    return this.body(writer, asBuffer(bytes as Uint8Array)) as RecordTypes[K];
  }

  /**
   * `decode`, except that the `bytes` fields (tensor data) of a message written with the current schema are views
   * into `bytes` rather than copies: for hot paths that unpack the record before the message is dropped (the
   * aggregator's updates). Do not keep such a record, nor write to its buffers: they are the message's.
   */
  decodeView<K extends RecordKind>(kind: K, bytes: Uint8Array | null | undefined): RecordTypes[K] {
    const fingerprint = readSingleObjectHeader(bytes);
    const writer = this.byFingerprint.get(fingerprint);
    if (writer?.kind !== kind || !writer.viewType) return this.decode(kind, bytes);
    return this.body(writer, asBuffer(bytes as Uint8Array), writer.viewType) as RecordTypes[K];
  }

  /** Decodes a message of any known kind, e.g. to inspect the dead-letter topic. */
  decodeAny(bytes: Uint8Array | null | undefined): DecodedMessage {
    const fingerprint = readSingleObjectHeader(bytes);
    const writer = this.byFingerprint.get(fingerprint);
    if (!writer) throw this.unknownFingerprint(fingerprint);
    const value = this.body(writer, asBuffer(bytes as Uint8Array));
    return { kind: writer.kind, value, fingerprint: writer.fingerprintHex, writer: writer.label } as DecodedMessage;
  }

  private current(kind: RecordKind): Writer {
    const writer = this.currentByKind.get(kind);
    if (!writer) throw new CodecError('CODEC_INVALID', `unknown record kind ${String(kind)}; expected one of ${RECORD_KINDS.join(', ')}`, { details: { kind } });
    return writer;
  }

  private unknownFingerprint(fingerprint: bigint, expectedKind?: RecordKind): CodecError {
    const hex = fingerprintHex(fingerprint);
    const known = [...this.byFingerprint.values()]
      .filter((w) => !expectedKind || w.kind === expectedKind)
      .map((w) => `${w.fingerprintHex} (${w.kind} ${w.label})`);
    const what = expectedKind ? `a ${expectedKind} schema` : 'a schema';
    return new CodecError('CODEC_UNKNOWN_FINGERPRINT', `message written with unknown writer schema fingerprint ${hex}; expected ${what} this reader knows: ${known.join(', ')}`, {
      details: { offset: 2, fingerprint: hex, ...(expectedKind ? { expectedKind } : {}), known },
    });
  }

  private body(writer: Writer, buf: Buffer, view?: AvroType): unknown {
    checkBinary(writer.type, buf, SINGLE_OBJECT_HEADER_SIZE, writer.kind);
    const reader = view ?? (writer.resolver ? (this.currentByKind.get(writer.kind) as Writer).type : writer.type);
    try {
      const { value, offset } = reader.decode(buf, SINGLE_OBJECT_HEADER_SIZE, writer.resolver);
      if (offset !== buf.length) {
        throw new Error(offset < 0 ? 'truncated body' : `${buf.length - offset} trailing byte(s)`);
      }
      return value;
    } catch (err) {
      // The bounds check above should leave nothing for avsc to object to; this keeps the promise anyway.
      throw new CodecError('CODEC_INVALID', `cannot decode ${writer.kind} (writer schema ${writer.fingerprintHex}, ${writer.label}): ${(err as Error).message}`, {
        cause: err,
        details: { kind: writer.kind, field: '<body>', fingerprint: writer.fingerprintHex },
      });
    }
  }
}

let defaultInstance: AvroCodec | undefined;

/** The codec for the repository's schemas, loaded once on first use. */
export function defaultCodec(): AvroCodec {
  defaultInstance ??= AvroCodec.fromDirectory();
  return defaultInstance;
}
