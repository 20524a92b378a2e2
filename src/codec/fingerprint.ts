/**
 * Avro schema fingerprints, exactly as the Avro specification defines them
 * ("Schema Fingerprints" and "Parsing Canonical Form for Schemas"):
 *
 * - `parsingCanonicalForm(schema)` applies the spec's transformations [PRIMITIVES], [FULLNAMES], [STRIP],
 *   [ORDER], [STRINGS], [INTEGERS] and [WHITESPACE] to a parsed JSON schema;
 * - `crc64Avro(bytes)` is the spec's CRC-64-AVRO (Rabin) fingerprint, table-driven like the spec's Java code;
 * - `schemaFingerprint(schema)` is CRC-64-AVRO over the UTF-8 bytes of the canonical form.
 *
 * The PCF is computed here rather than taken from avsc's `Type#schema()` so that the wire contract does not
 * depend on how a library happens to order JSON keys; a unit test checks that both agree for our schemas.
 */
import { CodecError } from '../common/index.ts';

/** The spec's EMPTY: the fingerprint of zero bytes, and the (reflected) polynomial of CRC-64-AVRO. */
export const CRC64_AVRO_EMPTY = 0xc15d213aa4d7a795n;

const MASK64 = 0xffff_ffff_ffff_ffffn;

/** `FP_TABLE` from the spec: for each byte value, eight shift-and-conditional-xor steps. */
const FP_TABLE: readonly bigint[] = (() => {
  const table: bigint[] = [];
  for (let i = 0; i < 256; i++) {
    let fp = BigInt(i);
    for (let j = 0; j < 8; j++) {
      // Java: fp = (fp >>> 1) ^ (EMPTY & -(fp & 1L))
      fp = (fp >> 1n) ^ ((fp & 1n) === 1n ? CRC64_AVRO_EMPTY : 0n);
    }
    table.push(fp);
  }
  return table;
})();

/** CRC-64-AVRO of `bytes`, as an unsigned 64-bit BigInt. */
export function crc64Avro(bytes: Uint8Array): bigint {
  let fp = CRC64_AVRO_EMPTY;
  for (const byte of bytes) {
    // Java: fp = (fp >>> 8) ^ FP_TABLE[(int)(fp ^ buf[i]) & 0xff]
    fp = (fp >> 8n) ^ (FP_TABLE[Number((fp ^ BigInt(byte)) & 0xffn)] as bigint);
  }
  return fp & MASK64;
}

const PRIMITIVES = new Set(['null', 'boolean', 'int', 'long', 'float', 'double', 'bytes', 'string']);
const NAMED = new Set(['record', 'error', 'enum', 'fixed']);

function invalidSchema(message: string, path: string): CodecError {
  return new CodecError('CODEC_INVALID', `invalid Avro schema at ${path || '<root>'}: ${message}`, { details: { field: path } });
}

function fullName(name: string, namespace: string | undefined): string {
  if (name.includes('.')) return name;
  return namespace ? `${namespace}.${name}` : name;
}

function namespaceOf(full: string): string | undefined {
  const dot = full.lastIndexOf('.');
  return dot < 0 ? undefined : full.slice(0, dot);
}

/**
 * The Parsing Canonical Form of a parsed JSON schema (a string, an array for a union, or an object).
 * Named types already seen are written as their full name, as the spec's [FULLNAMES] asks.
 */
export function parsingCanonicalForm(schema: unknown): string {
  return canonical(schema, undefined, new Set<string>(), '');
}

function canonical(schema: unknown, namespace: string | undefined, seen: Set<string>, path: string): string {
  if (typeof schema === 'string') {
    // [PRIMITIVES] and references to named types by (full) name.
    return JSON.stringify(PRIMITIVES.has(schema) ? schema : fullName(schema, namespace));
  }
  if (Array.isArray(schema)) {
    return `[${schema.map((branch, i) => canonical(branch, namespace, seen, `${path}[${i}]`)).join(',')}]`;
  }
  if (schema === null || typeof schema !== 'object') throw invalidSchema(`expected a string, array or object, got ${String(schema)}`, path);

  const obj = schema as Record<string, unknown>;
  const type = obj.type;
  if (typeof type !== 'string') {
    // `{"type": {...}}` or `{"type": [...]}`: the inner schema is the type.
    if (type === undefined) throw invalidSchema('missing "type"', path);
    return canonical(type, namespace, seen, path);
  }
  if (PRIMITIVES.has(type)) return JSON.stringify(type); // [STRIP] drops logicalType and everything else.

  if (NAMED.has(type)) {
    if (typeof obj.name !== 'string') throw invalidSchema(`${type} without a name`, path);
    const ownNamespace = typeof obj.namespace === 'string' ? obj.namespace || undefined : namespace;
    const name = fullName(obj.name, ownNamespace);
    if (seen.has(name)) return JSON.stringify(name);
    seen.add(name);
    const innerNamespace = namespaceOf(name);
    // [ORDER]: name, type, fields, symbols, items, values, size.
    const head = `{"name":${JSON.stringify(name)},"type":${JSON.stringify(type)}`;
    if (type === 'enum') {
      if (!Array.isArray(obj.symbols)) throw invalidSchema('enum without symbols', path);
      return `${head},"symbols":[${obj.symbols.map((s) => JSON.stringify(String(s))).join(',')}]}`;
    }
    if (type === 'fixed') {
      const size = obj.size;
      if (typeof size !== 'number' || !Number.isInteger(size) || size < 0) throw invalidSchema('fixed without a valid size', path);
      return `${head},"size":${String(size)}}`; // [INTEGERS]
    }
    if (!Array.isArray(obj.fields)) throw invalidSchema(`${type} without fields`, path);
    const fields = obj.fields.map((field: unknown, i) => {
      const f = field as Record<string, unknown> | null;
      if (!f || typeof f.name !== 'string') throw invalidSchema('field without a name', `${path}.fields[${i}]`);
      const fieldPath = path ? `${path}.${f.name}` : f.name;
      return `{"name":${JSON.stringify(f.name)},"type":${canonical(f.type, innerNamespace, seen, fieldPath)}}`;
    });
    return `${head},"fields":[${fields.join(',')}]}`;
  }
  if (type === 'array') return `{"type":"array","items":${canonical(obj.items, namespace, seen, `${path}[]`)}}`;
  if (type === 'map') return `{"type":"map","values":${canonical(obj.values, namespace, seen, `${path}{}`)}}`;
  // A reference to a named type written as {"type": "io.fedstream.TensorRecord"}.
  return JSON.stringify(fullName(type, namespace));
}

/** CRC-64-AVRO of the schema's Parsing Canonical Form (UTF-8). */
export function schemaFingerprint(schema: unknown): bigint {
  return crc64Avro(Buffer.from(parsingCanonicalForm(schema), 'utf8'));
}

/** The 8 bytes that carry a fingerprint on the wire: little-endian, as the single-object encoding specifies. */
export function fingerprintToBytes(fingerprint: bigint): Buffer {
  const out = Buffer.alloc(8);
  out.writeBigUInt64LE(BigInt.asUintN(64, fingerprint));
  return out;
}

/** Reads a little-endian fingerprint from `bytes` at `offset` (8 bytes must be there). */
export function fingerprintFromBytes(bytes: Uint8Array, offset = 0): bigint {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).readBigUInt64LE(offset);
}

/**
 * How fingerprints are shown in messages, logs and docs: the 64-bit value as 16 lowercase hex digits, most
 * significant first (so `"int"` is `7275d51a3f395c8f`, which travels as the bytes `8f 5c 39 3f 1a d5 75 72`).
 */
export function fingerprintHex(fingerprint: bigint): string {
  return BigInt.asUintN(64, fingerprint).toString(16).padStart(16, '0');
}
