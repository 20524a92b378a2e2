/**
 * Avro single-object encoding of the five FedStream records, with schema resolution by fingerprint.
 *
 * A message is `C3 01` + the writer schema's CRC-64-AVRO fingerprint (8 bytes, little-endian) + the Avro
 * binary body (docs/wire-format.md). The codec knows every writer schema in `schemas/avro/*.avsc` (current)
 * and `schemas/avro/history/<Kind>.<label>.avsc` (older versions); a body written with an older schema is
 * resolved into the current one with avsc's `createResolver`, so readers always see the current shape.
 */
import { CodecError } from '../common/index.ts';
import { checkBinary } from './binary-check.ts';
import { fingerprintHex, fingerprintToBytes, schemaFingerprint } from './fingerprint.ts';
import { fieldProblems, preview, type FieldProblem } from './problems.ts';
import { RECORD_KINDS, type AnyRecord, type RecordKind, type RecordTypes } from './records.ts';
import { kindOf, loadSchemaSources, parseType, type AvroCodecOptions, type AvroType, type WriterSchemaInfo } from './schemas.ts';
import { SINGLE_OBJECT_HEADER_SIZE, SINGLE_OBJECT_MAGIC, asBuffer, readSingleObjectHeader } from './single-object.ts';

type Resolver = ReturnType<AvroType['createResolver']>;

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
    return fieldProblems(this.current(kind).type, value);
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
