/**
 * Non-finite floats on their way out of ClickHouse. JSON has no NaN or infinity: by default ClickHouse writes
 * them all as `null`, so a reader cannot tell NaN from +Inf from -Inf (chdb #575, ClickHouse #61412). Queries
 * are therefore run with `output_format_json_quote_denormals = 1` (ClickHouse then writes `"nan"`, `"-nan"`,
 * `"inf"`, `"-inf"`) in a format that names each column's type (`JSONCompactEachRowWithNamesAndTypes`), and
 * {@link decodeByType} turns those strings back into NaN, Infinity and -Infinity, in Float columns only (a String
 * column holding "inf" stays a string). -0 needs nothing: ClickHouse writes `-0` and JSON.parse reads -0.
 */
import { FedStreamError } from '../../common/index.ts';

/** The settings a read needs for non-finite floats to come back as themselves. */
export const EXACT_FLOAT_OUTPUT = { output_format_json_quote_denormals: 1 } as const;

/** A parsed ClickHouse type: its name and, for parametric types, its arguments (element types, or raw text). */
interface TypeNode {
  name: string;
  args: TypeNode[];
}

/** Splits `a, b(c, d), 'e, f'` at top-level commas (outside parentheses and quotes). */
function splitTop(text: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let quote = '';
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quote) {
      if (ch === '\\') i++;
      else if (ch === quote) quote = '';
    } else if (ch === "'" || ch === '`' || ch === '"') quote = ch;
    else if (ch === '(') depth++;
    else if (ch === ')') depth--;
    else if (ch === ',' && depth === 0) {
      out.push(text.slice(start, i).trim());
      start = i + 1;
    }
  }
  const last = text.slice(start).trim();
  if (last !== '') out.push(last);
  return out;
}

/** Parses a ClickHouse type name such as `Map(LowCardinality(String), Float64)` or `Tuple(a String, b Float64)`. */
export function parseType(text: string): TypeNode {
  const t = text.trim();
  const open = t.indexOf('(');
  const space = t.search(/\s/);
  // A named tuple element (`loss Float64`, `m Map(String, Float64)`): a name, then whitespace before any `(`.
  if (space > 0 && (open < 0 || space < open)) return parseType(t.slice(space));
  if (open < 0 || !t.endsWith(')')) return { name: t, args: [] };
  return { name: t.slice(0, open).trim(), args: splitTop(t.slice(open + 1, -1)).map(parseType) };
}

/** A Float column's JSON value (number, or the quoted `nan`/`inf` of quote_denormals) as the JS number it stands for. */
export function decodeFloat(v: unknown): unknown {
  if (typeof v !== 'string') return v;
  switch (v.toLowerCase()) {
    case 'nan': case '-nan': case '+nan': return Number.NaN;
    case 'inf': case '+inf': case 'infinity': case '+infinity': return Number.POSITIVE_INFINITY;
    case '-inf': case '-infinity': return Number.NEGATIVE_INFINITY;
    default: return v;
  }
}

const FLOAT_TYPES = new Set(['Float32', 'Float64', 'BFloat16']);

/** True when values of this type can hold a float somewhere (so decoding them is worth walking). */
function holdsFloat(t: TypeNode): boolean {
  return FLOAT_TYPES.has(t.name) || t.args.some(holdsFloat);
}

/** Decodes one JSON value of type `t`: floats at any depth (Nullable, LowCardinality, Array, Map, Tuple) become numbers. */
export function decodeByType(t: TypeNode, v: unknown): unknown {
  if (v === null || v === undefined || !holdsFloat(t)) return v;
  if (FLOAT_TYPES.has(t.name)) return decodeFloat(v);
  switch (t.name) {
    case 'Nullable':
    case 'LowCardinality':
      return decodeByType(t.args[0]!, v);
    case 'Array':
      return Array.isArray(v) ? v.map((x) => decodeByType(t.args[0]!, x)) : v;
    case 'Map': {
      if (typeof v !== 'object') return v;
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v as Record<string, unknown>)) out[k] = decodeByType(t.args[1]!, x);
      return out;
    }
    case 'Tuple': {
      if (Array.isArray(v)) return v.map((x, i) => (t.args[i] ? decodeByType(t.args[i], x) : x));
      if (typeof v === 'object') {
        const entries = Object.entries(v as Record<string, unknown>);
        return Object.fromEntries(entries.map(([k, x], i) => [k, t.args[i] ? decodeByType(t.args[i], x) : x]));
      }
      return v;
    }
    default:
      return v;
  }
}

/**
 * Rows of a `JSONCompactEachRowWithNamesAndTypes` result (its first two rows are the names and the types) as
 * objects keyed by column name, with every float decoded by {@link decodeByType}.
 */
export function rowsFromCompact<T>(rows: unknown[][]): T[] {
  if (rows.length === 0) return [];
  const [names, types] = rows;
  if (!Array.isArray(names) || !Array.isArray(types) || names.length !== types.length) {
    throw new FedStreamError('ANALYTICS_QUERY', 'a JSONCompactEachRowWithNamesAndTypes result did not start with its names and types');
  }
  const parsed = types.map((t) => parseType(String(t)));
  const out: T[] = [];
  for (let r = 2; r < rows.length; r++) {
    const row = rows[r]!;
    const obj: Record<string, unknown> = {};
    for (let c = 0; c < names.length; c++) obj[String(names[c])] = decodeByType(parsed[c]!, row[c]);
    out.push(obj as T);
  }
  return out;
}
