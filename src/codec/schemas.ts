/**
 * The schema side of the Avro codec: finding and loading `schemas/avro` (current schemas and their history) and
 * turning each .avsc into an avsc type, with exact longs and, for `decodeView`, bytes read as views.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import avsc from 'avsc';
import { CodecError } from '../common/index.ts';
import { MAX_LONG, RECORD_KINDS, type RecordKind } from './records.ts';

export type AvroType = avsc.Type;

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

export function kindOf(schema: unknown, source: string): RecordKind {
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

/**
 * Which of our own types replace avsc's for a primitive, whether it is written `"long"` or as an object such as
 * `{"type": "long", "logicalType": "timestamp-millis"}`: avsc looks the former up in the registry but builds its own
 * LongType for the latter, which would bypass EXACT_LONG (and sign-flip timestamps below −2^52).
 */
function primitiveHook(primitives: Readonly<Record<string, avsc.Type>>): (schema: avsc.Schema) => avsc.Type | undefined {
  return (schema) => {
    if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) return undefined;
    const name = (schema as { type?: unknown }).type;
    return typeof name === 'string' && Object.hasOwn(primitives, name) ? primitives[name] : undefined;
  };
}

export function parseType(schema: unknown, source: string, views = false): AvroType {
  try {
    // A fresh registry per file: each .avsc stands alone (TensorRecord is defined inline where used).
    const primitives: Record<string, avsc.Type> = views ? { long: EXACT_LONG, bytes: VIEW_BYTES } : { long: EXACT_LONG };
    return avsc.Type.forSchema(schema as avsc.Schema, { ...FORSCHEMA_OPTIONS, registry: { ...primitives }, typeHook: primitiveHook(primitives) });
  } catch (err) {
    throw new CodecError('CODEC_INVALID', `${source}: not a valid Avro schema: ${(err as Error).message}`, { cause: err, details: { source } });
  }
}

/** Package root: the nearest ancestor of this module with `package.json` and `schemas/avro` (works from any cwd, from dist/ and from an installed package). */
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
