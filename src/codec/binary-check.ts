/**
 * A bounds-checked walk of an Avro binary body against its writer schema, run before avsc decodes it.
 *
 * Why: avsc reads optimistically (past-the-end reads yield zeros and one "truncated buffer" at the end) and
 * trusts block counts, so a corrupt array count can make it allocate and loop for a long time. This walk
 * touches every byte once, allocates nothing proportional to claimed counts, and says where a message went
 * wrong: the byte offset and the field path (`tensors[1].data`), which end up in the dead-letter audit event.
 */
import { isUtf8 } from 'node:buffer';
import type avsc from 'avsc';
import { CodecError } from '../common/index.ts';
import { MAX_LONG } from './records.ts';

type AvroType = avsc.Type;

/** The parts of avsc's type objects that the walk reads (public properties in avsc 5, untyped in its .d.ts). */
interface TypeInternals {
  typeName: string;
  fields?: { name: string; type: AvroType }[];
  itemsType?: AvroType;
  valuesType?: AvroType;
  types?: AvroType[];
  symbols?: string[];
  size?: number;
  underlyingType?: AvroType;
}

function internals(type: AvroType): TypeInternals {
  return type as unknown as TypeInternals;
}

/** Smallest number of bytes one value of the type takes, to bound block counts (0 for null, empty records). */
function minSize(type: AvroType, seen = new Set<AvroType>()): number {
  const t = internals(type);
  switch (t.typeName) {
    case 'null':
      return 0;
    case 'float':
      return 4;
    case 'double':
      return 8;
    case 'fixed':
      return t.size ?? 0;
    case 'record':
    case 'error': {
      if (seen.has(type)) return 0;
      seen.add(type);
      return (t.fields ?? []).reduce((sum, f) => sum + minSize(f.type, seen), 0);
    }
    default:
      if (t.typeName.startsWith('logical:') && t.underlyingType) return minSize(t.underlyingType, seen);
      return 1; // every varint-prefixed value, enum and union index takes at least one byte
  }
}

/** Block counts of zero-size items are capped here instead of by the bytes left. */
const MAX_ZERO_SIZE_ITEMS = 1_000_000;

/** minSize per type, computed once per process (schemas are few and live as long as the codec). */
const minSizes = new WeakMap<AvroType, number>();

/**
 * One step of the path to the value being read: a field name, an array index, or the byte range of a map key.
 * Kept raw and turned into text (`tensors[1].data`, `metrics["a b"]`) only when an error is reported: the walk
 * runs on every message, errors are rare.
 */
type Step = string | number | { keyAt: number; keyEnd: number };

class Walker {
  pos: number;
  private readonly path: Step[] = [];

  constructor(
    private readonly buf: Buffer,
    start: number,
    private readonly kind: string,
  ) {
    this.pos = start;
  }

  private where(): string {
    let out = '';
    for (const step of this.path) {
      if (typeof step === 'string') out += out ? `.${step}` : step;
      else if (typeof step === 'number') out += `[${step}]`;
      else {
        const key = this.buf.toString('utf8', step.keyAt, step.keyEnd);
        out += /^[A-Za-z_$][\w$]*$/.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`;
      }
    }
    return out || '<root>';
  }

  truncated(start: number, needed: number, what: string): CodecError {
    const field = this.where();
    return new CodecError(
      'CODEC_TRUNCATED',
      `${this.kind} message truncated at ${field}: ${what} starting at byte ${start} needs ${needed} byte(s), message has ${this.buf.length}`,
      { details: { offset: start, field, needed, length: this.buf.length, kind: this.kind } },
    );
  }

  invalid(offset: number, what: string): CodecError {
    const field = this.where();
    return new CodecError('CODEC_INVALID', `${this.kind} message invalid at ${field} (byte ${offset}): ${what}`, {
      details: { offset, field, kind: this.kind },
    });
  }

  /** Zig-zag varint, at most 10 bytes; returns a safe integer or throws. */
  readLong(what: string, bits: 32 | 64): number {
    const start = this.pos;
    const buf = this.buf;
    let low = 0; // first 7 groups (49 bits) exactly in a double
    let big: bigint | undefined;
    let shift = 0;
    for (let i = 0; ; i++) {
      if (i === 10) throw this.invalid(start, `${what}: varint longer than 10 bytes`);
      if (this.pos >= buf.length) throw this.truncated(start, this.pos - start + 1, what);
      const b = buf[this.pos++] as number;
      if (i < 7) low += (b & 0x7f) * 2 ** shift;
      else big = (big ?? BigInt(low)) + (BigInt(b & 0x7f) << BigInt(shift));
      shift += 7;
      if ((b & 0x80) === 0) break;
    }
    let value: number;
    if (big === undefined) {
      value = low % 2 === 0 ? low / 2 : -(low + 1) / 2;
    } else {
      const zz = BigInt.asUintN(64, big);
      const v = (zz >> 1n) ^ -(zz & 1n);
      if (v > BigInt(MAX_LONG) || v < -BigInt(MAX_LONG)) {
        throw this.invalid(start, `${what}: ${v} is beyond ±${MAX_LONG} (2^53 - 1), which FedStream does not represent exactly`);
      }
      value = Number(v);
    }
    if (bits === 32 && (value > 0x7fffffff || value < -0x80000000)) throw this.invalid(start, `${what}: ${value} does not fit an int`);
    return value;
  }

  private take(n: number, what: string): number {
    const start = this.pos;
    if (n > this.buf.length - start) throw this.truncated(start, n, what);
    this.pos += n;
    return start;
  }

  private length(what: string): number {
    const start = this.pos;
    const len = this.readLong(`${what} length`, 64);
    if (len < 0) throw this.invalid(start, `negative ${what} length ${len}`);
    return len;
  }

  private itemSize(type: AvroType): number {
    let size = minSizes.get(type);
    if (size === undefined) {
      size = minSize(type);
      minSizes.set(type, size);
    }
    return size;
  }

  /** Reads a block count; `min` is the least bytes one item takes (a map entry: key length + value). */
  private blockCount(min: number, what: string): number {
    const start = this.pos;
    let count = this.readLong(`${what} block count`, 64);
    if (count < 0) {
      count = -count;
      this.length(`${what} block size`);
    }
    if (min > 0) {
      if (count * min > this.buf.length - this.pos) throw this.truncated(start, count * min, `${what} block of ${count} item(s)`);
    } else if (count > MAX_ZERO_SIZE_ITEMS) {
      throw this.invalid(start, `${what} block of ${count} empty items`);
    }
    return count;
  }

  value(type: AvroType): void {
    const t = internals(type);
    switch (t.typeName) {
      case 'null':
        return;
      case 'boolean': {
        const at = this.take(1, 'boolean');
        if ((this.buf[at] as number) > 1) throw this.invalid(at, `boolean byte ${this.buf[at]} is neither 0 nor 1`);
        return;
      }
      case 'int':
        this.readLong('int', 32);
        return;
      case 'long':
      case 'abstract:long':
        this.readLong('long', 64);
        return;
      case 'float':
        this.take(4, 'float');
        return;
      case 'double':
        this.take(8, 'double');
        return;
      case 'bytes':
        this.take(this.length('bytes'), 'bytes');
        return;
      case 'string': {
        const at = this.take(this.length('string'), 'string');
        if (!isUtf8(this.buf.subarray(at, this.pos))) throw this.invalid(at, 'string is not valid UTF-8');
        return;
      }
      case 'fixed':
        this.take(t.size ?? 0, 'fixed');
        return;
      case 'enum': {
        const at = this.pos;
        const index = this.readLong('enum index', 32);
        const symbols = t.symbols ?? [];
        if (index < 0 || index >= symbols.length) throw this.invalid(at, `enum index ${index} outside 0..${symbols.length - 1}`);
        return;
      }
      case 'record':
      case 'error':
        for (const field of t.fields ?? []) {
          this.path.push(field.name);
          this.value(field.type);
          this.path.pop();
        }
        return;
      case 'array': {
        const items = t.itemsType as AvroType;
        const min = this.itemSize(items);
        let i = 0;
        for (let n = this.blockCount(min, 'array'); n !== 0; n = this.blockCount(min, 'array')) {
          for (let k = 0; k < n; k++, i++) {
            this.path.push(i);
            this.value(items);
            this.path.pop();
          }
        }
        return;
      }
      case 'map': {
        const values = t.valuesType as AvroType;
        const min = 1 + this.itemSize(values);
        for (let n = this.blockCount(min, 'map'); n !== 0; n = this.blockCount(min, 'map')) {
          for (let k = 0; k < n; k++) {
            const keyAt = this.take(this.length('map key'), 'map key');
            if (!isUtf8(this.buf.subarray(keyAt, this.pos))) throw this.invalid(keyAt, 'map key is not valid UTF-8');
            this.path.push({ keyAt, keyEnd: this.pos });
            this.value(values);
            this.path.pop();
          }
        }
        return;
      }
      default: {
        if (t.typeName.startsWith('union')) {
          const at = this.pos;
          const index = this.readLong('union index', 32);
          const branches = t.types ?? [];
          const branch = branches[index];
          if (!branch) throw this.invalid(at, `union index ${index} outside 0..${branches.length - 1}`);
          this.value(branch);
          return;
        }
        if (t.typeName.startsWith('logical:') && t.underlyingType) {
          this.value(t.underlyingType);
          return;
        }
        throw new CodecError('CODEC_INVALID', `cannot check Avro type ${t.typeName}`, { details: { field: this.where() } });
      }
    }
  }
}

/**
 * Checks that `buf[start..]` holds exactly one value of `writerType`; throws CODEC_TRUNCATED or CODEC_INVALID
 * with `details.offset` (absolute byte offset in `buf`) and `details.field` otherwise.
 */
export function checkBinary(writerType: AvroType, buf: Buffer, start: number, kind: string): void {
  const walker = new Walker(buf, start, kind);
  walker.value(writerType);
  if (walker.pos !== buf.length) {
    throw walker.invalid(walker.pos, `${buf.length - walker.pos} trailing byte(s) after the ${kind} record`);
  }
}
