import { readFileSync, existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { LineCounter, Parser, parseDocument, visit } from 'yaml';
import { ConfigError, FedStreamError } from '../common/index.ts';
import { manifestSchema, type Manifest, type ParticipantsSection } from './schema.ts';

export * from './schema.ts';

/**
 * The pipeline manifest: one YAML file per pipeline (pipelines/*.yaml). Parsed once, at start,
 * with `additionalProperties: false` semantics everywhere: an unknown key is an error, and every
 * error names the field path and what was expected. The schema is schema.ts; here, reading the text (bounded),
 * moving legacy keys, validating, and resolving the paths the manifest holds.
 */

function formatPath(path: ReadonlyArray<PropertyKey>): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i === 0 ? '' : '.'}${String(p)}`)).join('') || '(root)';
}

/** Keys that manifests written before the `rounds` and `limits` sections kept under `strategy`, and where they went. */
export const LEGACY_STRATEGY_KEYS = {
  rounds: ['rounds', 'count'],
  targetUpdates: ['rounds', 'targetUpdates'],
  minUpdates: ['rounds', 'minUpdates'],
  roundTimeoutMs: ['rounds', 'timeoutMs'],
  maxExtensions: ['rounds', 'maxExtensions'],
  maxUpdateNorm: ['limits', 'maxUpdateNorm'],
} as const;

const notes = new WeakMap<object, string[]>();

/** What loading a manifest had to say without failing (e.g. legacy keys moved); the CLI logs them as warnings. */
export function manifestNotes(m: Manifest): readonly string[] {
  return notes.get(m) ?? [];
}

/**
 * Moves round-protocol keys that older manifests kept under `strategy` into `rounds` and `limits`, so that those
 * manifests keep loading. A key given in both places is an error (which one would win is not obvious).
 */
function migrateLegacy(raw: unknown, said: string[]): unknown {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return raw;
  const r = raw as Record<string, unknown>;
  const strategy = r.strategy;
  if (typeof strategy !== 'object' || strategy === null || Array.isArray(strategy)) return raw;
  const legacy = Object.keys(LEGACY_STRATEGY_KEYS).filter((k) => k in strategy);
  if (legacy.length === 0) return raw;
  const out: Record<string, unknown> = { ...r, strategy: { ...strategy } };
  for (const k of legacy) {
    const [section, key] = LEGACY_STRATEGY_KEYS[k as keyof typeof LEGACY_STRATEGY_KEYS];
    const target = { ...((out[section] as Record<string, unknown> | undefined) ?? {}) };
    if (key in target) throw new ConfigError(`strategy.${k}`, `also given as ${section}.${key}; keep only ${section}.${key}`);
    target[key] = (strategy as Record<string, unknown>)[k];
    out[section] = target;
    delete (out.strategy as Record<string, unknown>)[k];
    said.push(`strategy.${k} is now ${section}.${key}; the manifest still loads, but move the key`);
  }
  return out;
}

/** Validates an already-parsed manifest object; throws ConfigError naming the first bad field (all issues in `details.issues`). */
export function parseManifest(raw: unknown, source = 'manifest'): Manifest {
  const said: string[] = [];
  const result = manifestSchema.safeParse(migrateLegacy(raw, said));
  if (result.success) {
    if (said.length) notes.set(result.data, said);
    return result.data;
  }
  const issues = result.error.issues.map((issue) => {
    const keys = issue.code === 'unrecognized_keys' ? ` (${(issue as { keys: string[] }).keys.join(', ')})` : '';
    return { path: formatPath(issue.path), message: issue.code === 'unrecognized_keys' ? `unknown key${keys}` : issue.message };
  });
  const first = issues[0]!;
  const more = issues.slice(1).map((i) => `; ${i.path}: ${i.message}`).join('');
  throw new ConfigError(first.path, `${first.message}${more}`, { source, details: { issues } });
}

/** Reads and validates a manifest file. YAML syntax errors name the line and column. */
export function loadManifest(file: string): Manifest {
  const path = resolve(file);
  if (!existsSync(path)) throw new FedStreamError('CONFIG_NOT_FOUND', `pipeline manifest not found: ${path}`, { details: { path } });
  return resolveManifestPaths(parseManifestText(readFileSync(path, 'utf8'), file), dirname(path));
}

/**
 * The manifest with every file path it holds made absolute against `dir` (the manifest's directory): the
 * participants' keys and the embedded ClickHouse's `analytics.path` (the default one too), so that a command run
 * from another working directory reads the same database as the services, instead of creating an empty one.
 */
export function resolveManifestPaths(m: Manifest, dir: string): Manifest {
  const out = resolveParticipantPaths(m, dir);
  const withPath = { ...out, analytics: { ...out.analytics, path: resolve(dir, out.analytics.path) } };
  const said = notes.get(m);
  if (said) notes.set(withPath, said);
  return withPath;
}

/**
 * Parses and validates a manifest's YAML (or JSON) text; `source` names it in errors. Throws ConfigError: a YAML
 * syntax error names the line and column, a bad value the field path.
 */
export function parseManifestText(text: string, source = 'manifest'): Manifest {
  checkTextBounds(text, source);
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const where = e.linePos?.[0] ? `line ${e.linePos[0].line}, column ${e.linePos[0].col}` : 'unknown position';
    throw new ConfigError('', `YAML syntax error at ${where}: ${e.message.split('\n')[0]}`, { source });
  }
  let raw: unknown;
  try {
    raw = doc.toJS();
  } catch (err) {
    // Aliases are what make a well-formed document fail here: one used before its anchor (or merged where it cannot
    // be), or so many that they would expand exponentially (a "billion laughs"). Name the alias at fault, or the first.
    const message = (err as Error).message;
    let at: number | undefined;
    visit(doc, {
      Alias(_key, node) {
        if (at === undefined || message.endsWith(`: ${node.source}`)) at = node.range?.[0];
        return message.endsWith(`: ${node.source}`) ? visit.BREAK : undefined;
      },
    });
    const pos = at === undefined ? undefined : lineCounter.linePos(at);
    throw new ConfigError('', `YAML cannot be read at ${pos ? `line ${pos.line}, column ${pos.col}` : 'unknown position'}: ${message}`, { source, cause: err });
  }
  return parseManifest(raw, source);
}

/** Bounds on a manifest's text, far beyond any real one, checked before the YAML document is built. */
export const MANIFEST_TEXT_BOUNDS = { maxBytes: 64 * 1024, maxDepth: 64 } as const;

/**
 * Refuses text that is too large or nested too deeply (`[[[[…`, `- - - - …`, `{a: {a: …`, thousands of indented
 * levels) before the YAML document is built: building it recurses once per level, and near the stack's end V8 can
 * abort the whole process instead of throwing. The depth is measured on yaml's concrete syntax tree, which its
 * parser builds without recursion (in time linear in the text), walked here with a stack of our own.
 */
function checkTextBounds(text: string, source: string): void {
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > MANIFEST_TEXT_BOUNDS.maxBytes) {
    throw new ConfigError('(root)', `${bytes} bytes of text, more than a manifest may have (${MANIFEST_TEXT_BOUNDS.maxBytes})`, { source });
  }
  const lines = new LineCounter();
  for (const token of new Parser(lines.addNewLine).parse(text)) {
    const stack: [unknown, number][] = [[token, 0]];
    while (stack.length > 0) {
      const [node, depth] = stack.pop() as [unknown, number];
      if (typeof node !== 'object' || node === null) continue;
      const t = node as { type?: string; offset?: number; value?: unknown; items?: { key?: unknown; value?: unknown }[] };
      if (depth > MANIFEST_TEXT_BOUNDS.maxDepth) {
        const pos = lines.linePos(t.offset ?? 0);
        throw new ConfigError('', `line ${pos.line}, column ${pos.col}: nested more than ${MANIFEST_TEXT_BOUNDS.maxDepth} levels deep`, { source });
      }
      if (t.type === 'document') stack.push([t.value, depth]);
      else if (t.items && (t.type === 'block-map' || t.type === 'block-seq' || t.type === 'flow-collection')) {
        for (const item of t.items) stack.push([item.key, depth + 1], [item.value, depth + 1]);
      }
    }
  }
}

/** The manifest with the participants' key paths made absolute against `dir` (the manifest's directory). */
export function resolveParticipantPaths(m: Manifest, dir: string): Manifest {
  const p = m.participants;
  if (!p) return m;
  const abs = (f: string | undefined) => (f === undefined ? undefined : resolve(dir, f));
  const resolved: ParticipantsSection = {
    ...p,
    keys: p.keys.map((k) => (k.publicKeyFile === undefined ? k : { ...k, publicKeyFile: abs(k.publicKeyFile) })),
    ...(p.keysFile === undefined ? {} : { keysFile: abs(p.keysFile) }),
    ...(p.keysDir === undefined ? {} : { keysDir: abs(p.keysDir) }),
  };
  const out = { ...m, participants: resolved };
  const said = notes.get(m);
  if (said) notes.set(out, said);
  return out;
}

export function parseDuration(value: number | string): number {
  if (typeof value === 'number') return value;
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(value);
  if (!m) throw new ConfigError('', `bad duration "${value}"`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 'ms' | 's' | 'm' | 'h' | 'd'];
  return Number(m[1]) * unit;
}

export function topicPrefix(m: Pick<Manifest, 'tenant' | 'name'>): string {
  return `${m.tenant}.${m.name}`;
}
