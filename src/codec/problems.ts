/**
 * Field-level problems of a value against an Avro type, with readable paths (`tensors[0].dtype`): what
 * `AvroCodec.problems` reports and `encode` throws.
 */
import { MAX_LONG } from './records.ts';
import { AVRO_NAMESPACE, type AvroType } from './schemas.ts';

export function preview(value: unknown): string {
  if (value === undefined) return 'undefined (missing)';
  if (Buffer.isBuffer(value)) return `<Buffer of ${value.length} bytes>`;
  if (typeof value === 'bigint') return `${value}n`;
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    try {
      text = String(value);
    } catch {
      // An object with neither toJSON nor a way to become a string (no prototype, bigints inside): its tag.
      text = Object.prototype.toString.call(value);
    }
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

/** A lone UTF-16 surrogate: no UTF-8 for it exists, so avsc writes bytes that no reader accepts (CESU-8). */
const LONE_SURROGATE = /\p{Cs}/u;

function surrogateProblem(path: string, text: string, what: string): FieldProblem {
  const at = text.search(LONE_SURROGATE);
  const unit = text.charCodeAt(at).toString(16);
  return { field: path || '<root>', message: `${what} holds a lone UTF-16 surrogate (\\u${unit} at index ${at}), which has no UTF-8 encoding` };
}

/**
 * What avsc's own check lets through: properties that the schema does not declare (avsc would drop them silently:
 * usually a typo), maps given as anything but a plain object (a Map would be written empty), and strings or map keys
 * with a lone surrogate (avsc would write bytes no reader accepts).
 */
function undeclaredFields(type: AvroType, value: unknown, path: string, out: FieldProblem[]): void {
  if (value === null || value === undefined) return;
  const t = view(type);
  if (t.typeName === 'string' && typeof value === 'string') {
    if (LONE_SURROGATE.test(value)) out.push(surrogateProblem(path, value, 'string'));
  } else if (t.typeName === 'enum') {
    // avsc looks symbols up in a plain object: 'toString' or '__proto__' would pass its check and be written as index 0.
    if (typeof value !== 'string' || !(t.symbols ?? []).includes(value)) out.push({ field: path || '<root>', message: `expected ${describe(type)}, got ${preview(value)}` });
  } else if (t.typeName === 'record' && typeof value === 'object' && !Array.isArray(value)) {
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
    const proto = Object.getPrototypeOf(value) as unknown;
    if (proto !== Object.prototype && proto !== null) {
      // avsc reads only own enumerable keys: a Map (or a Date, a Buffer…) would be written as {} or as index keys.
      const name = (value as { constructor?: { name?: unknown } }).constructor?.name;
      out.push({ field: path || '<root>', message: `expected ${describe(type)} as a plain object, got ${typeof name === 'string' && name ? `a ${name}` : 'an object with a prototype'}` });
      return;
    }
    for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
      if (LONE_SURROGATE.test(key)) out.push(surrogateProblem(appendPath(path, type, key), key, 'map key'));
      undeclaredFields(t.valuesType as AvroType, item, appendPath(path, type, key), out);
    }
  } else if (t.typeName.startsWith('union')) {
    for (const branch of t.types ?? []) {
      if (isValid(branch, value)) {
        undeclaredFields(branch, value, path, out);
        break;
      }
    }
  }
}

/** Wrong types, missing fields, out-of-range longs, unknown enum symbols, undeclared properties and strings without UTF-8 of `value`. */
export function fieldProblems(type: AvroType, value: unknown): FieldProblem[] {
  const problems: FieldProblem[] = [];
  const ours: FieldProblem[] = [];
  undeclaredFields(type, value, '', ours);
  try {
    type.isValid(value, {
      errorHook: (steps, got, at) => problems.push({ field: formatPath(type, steps), message: `expected ${describe(at)}, got ${preview(got)}` }),
    });
  } catch (err) {
    // avsc's check throws on some values it cannot compare (an array of prototype-less objects as an enum symbol).
    if (ours.length === 0) problems.push({ field: '<root>', message: `cannot be checked against the schema: ${(err as Error).message}` });
  }
  // The same field may be named by both checks (an unknown enum symbol): once is enough.
  for (const p of ours) if (!problems.some((q) => q.field === p.field)) problems.push(p);
  return problems;
}

/** `type.isValid(value)`, false where avsc's check throws. */
function isValid(type: AvroType, value: unknown): boolean {
  try {
    return type.isValid(value);
  } catch {
    return false;
  }
}
