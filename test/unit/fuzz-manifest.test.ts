// Property-based fuzzing of manifest loading (issue 13, "Fuzzing"): arbitrary JSON-ish documents, the repository's
// manifests with values replaced, keys dropped or added, and YAML text cut, spliced and laced with anchors and
// aliases. Each gives a Manifest or a ConfigError naming the field path (or the YAML line and column), quickly.
import { readFileSync, readdirSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ConfigError, type FedStreamError } from '../../src/common/errors.ts';
import { parseManifest, parseManifestText } from '../../src/config/index.ts';
import { FUZZ_TIMEOUT_MS, fuzzParams, typed } from '../support/fuzz.ts';

const dir = new URL('../../pipelines/', import.meta.url);
const TEXTS = readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort().map((f) => readFileSync(new URL(f, dir), 'utf8'));
const VALID = TEXTS.map((t) => parseManifestText(t) as unknown as Record<string, unknown>);

/** A config error names the field (its path, `(root)` for the document) or the YAML line and column. */
function configWhere(e: FedStreamError): boolean {
  if (!(e instanceof ConfigError)) return false;
  return e.path !== '' || /line \d+, column \d+|unknown position/.test(e.message);
}

/** Keys the schema knows, so that generated documents get past the first unknown-key check now and then. */
const KEYS = ['apiVersion', 'tenant', 'name', 'model', 'data', 'training', 'rounds', 'limits', 'strategy', 'topics', 'kafka', 'analytics', 'retention', 'inputShape', 'layers', 'type', 'units', 'source', 'count', 'targetUpdates', 'minUpdates', 'security', 'sasl', 'tls', 'password', 'file', 'env', 'maxPayloadBytes', '__proto__', 'constructor', 'toString'];

const scalarArb = fc.oneof(
  fc.constantFrom(null, true, false, 0, -1, 1.5, NaN, Infinity, -Infinity, -0, 2 ** 53, Number.MAX_VALUE, '', 'fedstream/v1', 'demo', 'mnist', 'dense', '7d', '1e3'),
  fc.integer(),
  fc.double(),
  fc.string({ maxLength: 10 }),
);
const { doc: docArb } = fc.letrec<{ doc: unknown }>((tie) => ({
  doc: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    scalarArb,
    fc.array(tie('doc'), { maxLength: 4 }),
    fc.dictionary(fc.oneof(fc.constantFrom(...KEYS), fc.string({ maxLength: 6 })), tie('doc'), { maxKeys: 5, noNullPrototype: true }),
  ),
}));

type Edit = { path: number[]; op: 'set'; value: unknown } | { path: number[]; op: 'delete' } | { path: number[]; op: 'add'; key: string; value: unknown };
const editArb: fc.Arbitrary<Edit> = fc.oneof(
  fc.record({ path: fc.array(fc.nat(), { minLength: 1, maxLength: 4 }), op: fc.constant('set' as const), value: docArb }),
  fc.record({ path: fc.array(fc.nat(), { minLength: 1, maxLength: 4 }), op: fc.constant('delete' as const) }),
  fc.record({ path: fc.array(fc.nat(), { maxLength: 3 }), op: fc.constant('add' as const), key: fc.constantFrom(...KEYS, 'extra'), value: docArb }),
);

/** Applies an edit at the path that `path` picks (each number picks a key or an index, modulo their count). */
function applyEdit(root: unknown, edit: Edit): unknown {
  const copy = structuredClone(root) as Record<string, unknown>;
  let parent: Record<string, unknown> | unknown[] = copy;
  let key: string | number | undefined;
  for (const step of edit.path) {
    const node: unknown = key === undefined ? parent : (parent as Record<string | number, unknown>)[key];
    if (typeof node !== 'object' || node === null) break;
    const keys = Array.isArray(node) ? node.map((_, i) => i) : Object.keys(node);
    if (keys.length === 0) break;
    if (key !== undefined) parent = node as Record<string, unknown>;
    key = keys[step % keys.length];
  }
  if (edit.op === 'add') {
    const target = key === undefined ? parent : (parent as Record<string | number, unknown>)[key];
    if (typeof target === 'object' && target !== null && !Array.isArray(target)) Object.defineProperty(target, edit.key, { value: edit.value, enumerable: true, configurable: true, writable: true });
    return copy;
  }
  if (key === undefined) return edit.op === 'set' ? edit.value : copy;
  if (edit.op === 'set') (parent as Record<string | number, unknown>)[key] = edit.value;
  else if (Array.isArray(parent)) parent.splice(key as number, 1);
  else delete (parent as Record<string, unknown>)[key as string];
  return copy;
}

/** YAML text edits: cut, insert YAML punctuation, duplicate a line, anchors and aliases. */
type TextEdit = { at: number; op: 'cut'; length: number } | { at: number; op: 'insert'; text: string } | { at: number; op: 'dup' };
const yamlBits = fc.constantFrom(':', '- ', '  ', '\n', '\t', '{', '}', '[', ']', '&a ', '*a', '!!binary ', '!!js/function ', '? ', '|', '>', '#', '"', "'", '%YAML 1.2\n', '---\n', '...\n', '<<: *a\n', '\u0000', '\ufeff', '~', '.inf', '-.inf', '.nan', '0x1F', '0o17', '1_000', '2001-12-14t21:59:43.10-05:00');
const textEditArb: fc.Arbitrary<TextEdit> = fc.oneof(
  fc.record({ at: fc.nat(), op: fc.constant('cut' as const), length: fc.integer({ min: 1, max: 40 }) }),
  fc.record({ at: fc.nat(), op: fc.constant('insert' as const), text: fc.oneof(yamlBits, fc.string({ maxLength: 8 })) }),
  fc.record({ at: fc.nat(), op: fc.constant('dup' as const) }),
);

function applyTextEdit(text: string, e: TextEdit): string {
  const at = e.at % (text.length + 1);
  if (e.op === 'cut') return text.slice(0, at) + text.slice(at + e.length);
  if (e.op === 'insert') return text.slice(0, at) + e.text + text.slice(at);
  const start = text.lastIndexOf('\n', at - 1) + 1;
  const end = text.indexOf('\n', at);
  const line = text.slice(start, end < 0 ? text.length : end + 1);
  return text.slice(0, start) + line + text.slice(start);
}

/** A document whose aliases expand to 10^depth nodes (a "billion laughs"). */
function aliasBomb(depth: number, width: number): string {
  const lines = ['a0: &a0 [x, x, x, x, x, x, x, x, x, x]'];
  for (let i = 1; i <= depth; i++) lines.push(`a${i}: &a${i} [${Array.from({ length: width }, () => `*a${i - 1}`).join(', ')}]`);
  return lines.join('\n');
}

function check(result: ReturnType<typeof typed<unknown>>): void {
  if (!result.ok) expect(result.error.code).toBe('CONFIG_INVALID');
}

describe('fuzz: manifest loading', { timeout: FUZZ_TIMEOUT_MS }, () => {
  it('arbitrary JSON-ish documents: a Manifest or a ConfigError naming the field', () => {
    fc.assert(
      fc.property(docArb, (doc) => check(typed(() => parseManifest(doc), configWhere))),
      fuzzParams('manifest.documents', 1000),
    );
  });

  it('the repository\'s manifests with values replaced, keys dropped or added: a Manifest or a ConfigError naming the field', () => {
    fc.assert(
      fc.property(fc.nat({ max: VALID.length - 1 }), fc.array(editArb, { minLength: 1, maxLength: 3 }), (which, edits) => {
        const doc = edits.reduce<unknown>((d, e) => applyEdit(d, e), VALID[which]);
        check(typed(() => parseManifest(doc), configWhere));
      }),
      fuzzParams('manifest.mutated', 1000),
    );
  });

  it('YAML text cut, spliced and laced with tags, anchors and aliases: a Manifest or a ConfigError naming the line or field', () => {
    fc.assert(
      fc.property(fc.nat({ max: TEXTS.length - 1 }), fc.array(textEditArb, { minLength: 1, maxLength: 5 }), (which, edits) => {
        const text = edits.reduce((t, e) => applyTextEdit(t, e), TEXTS[which] as string);
        check(typed(() => parseManifestText(text), configWhere));
      }),
      fuzzParams('manifest.text', 1000),
    );
  });

  it('arbitrary text and alias bombs: a ConfigError, quickly', () => {
    const textArb = fc.oneof(
      fc.string({ maxLength: 200 }),
      fc.array(yamlBits, { maxLength: 30 }).map((bits) => bits.join('')),
      fc.tuple(fc.integer({ min: 1, max: 9 }), fc.integer({ min: 2, max: 10 })).map(([d, w]) => aliasBomb(d, w)),
      fc.integer({ min: 1, max: 3000 }).map((n) => `${'['.repeat(n)}${']'.repeat(n)}`),
      fc.integer({ min: 1, max: 200 }).map((n) => Array.from({ length: n }, (_, i) => `${' '.repeat(2 * i)}a:`).join('\n')),
      fc.integer({ min: 1, max: 2000 }).map((n) => `${'{a: '.repeat(n)}${'}'.repeat(n)}`),
      fc.integer({ min: 1, max: 1500 }).map((n) => `${'- '.repeat(n)}x`),
      fc.integer({ min: 1, max: 1500 }).map((n) => `${'? '.repeat(n)}x`),
    );
    fc.assert(
      fc.property(textArb, (text) => check(typed(() => parseManifestText(text), configWhere))),
      fuzzParams('manifest.arbitrary-text', 800),
    );
  });
});
