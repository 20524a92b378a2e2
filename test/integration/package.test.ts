/**
 * The published package works with plain Node: `npm pack` (its prepack builds dist/), a temporary project installs
 * the tarball, and `node` without tsx or any loader imports `fedstream` and `fedstream/node`, decodes a record with
 * the Avro schemas shipped in the package, and `tsc` (NodeNext) type-checks a file against the shipped .d.ts files.
 *
 * How the temporary project gets its dependencies: `npm ci --offline --ignore-scripts` from npm's cache, which the
 * repository's own `npm ci` filled with every dependency's tarball. A plain `npm install <tarball> --offline` cannot
 * work: npm's cache holds tarballs but not the registry's metadata documents, and without a lockfile npm needs those
 * to pick versions (it fails with ENOTCACHED). So the test writes the temporary project a lockfile: the tarball as
 * `file:` dependency plus the repository lock's non-dev entries (the same versions and integrity hashes), and
 * `npm ci` then installs from the cache alone, with no network and no install scripts.
 *
 * Slow (tens of seconds: build, pack, install), hence in the integration project; it needs no broker.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const run = promisify(execFile);
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

interface LockEntry {
  dev?: boolean;
  devOptional?: boolean;
  link?: boolean;
  [key: string]: unknown;
}

/** Environment for child processes: without the npm_* variables of an enclosing `npm test`. */
function childEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith('npm_')));
}

/** package.json and package-lock.json of a project whose one dependency is the packed tarball (see the top). */
function writeProject(dir: string, tarball: string): void {
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as Record<string, unknown>;
  const lock = JSON.parse(readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> };
  const spec = `file:${path.relative(dir, tarball)}`;
  const integrity = `sha512-${createHash('sha512').update(readFileSync(tarball)).digest('base64')}`;
  const packages: Record<string, unknown> = {
    '': { name: 'fedstream-package-test', dependencies: { fedstream: spec } },
    'node_modules/fedstream': {
      version: pkg.version,
      resolved: spec,
      integrity,
      license: pkg.license,
      dependencies: pkg.dependencies,
      optionalDependencies: pkg.optionalDependencies,
      bin: pkg.bin,
      engines: pkg.engines,
    },
  };
  for (const [key, entry] of Object.entries(lock.packages)) {
    if (key === '' || entry.dev || entry.link) continue;
    const { devOptional, ...rest } = entry;
    packages[key] = devOptional ? { ...rest, optional: true } : rest;
  }
  writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'fedstream-package-test', private: true, type: 'module', dependencies: { fedstream: spec } }, null, 2));
  writeFileSync(path.join(dir, 'package-lock.json'), JSON.stringify({ name: 'fedstream-package-test', lockfileVersion: 3, requires: true, packages }, null, 2));
}

/** Imports the public API with plain node, checks its shape and decodes a record with the installed schemas. */
const PLAIN_NODE_SCRIPT = `
import { createNode, createAggregator, createSink, createTransport, runSink, FedStreamError, defaultCodec } from 'fedstream';
import { createNode as createNodeSdk } from 'fedstream/node';
const kinds = [createNode, createAggregator, createSink, createTransport, runSink, FedStreamError, createNodeSdk].map((f) => typeof f);
const transport = createTransport();
const health = await transport.health();
await transport.close();
const codec = defaultCodec();
const audit = { tenant: 't', pipeline: 'p', eventId: 'e-1', eventTime: 1700000000000, actor: 'package-test', action: 'ROUND_STARTED',
  round: 1, version: 0, nodeId: null, updateId: null, reason: null, details: { k: 'v' } };
const back = codec.decode('AuditEvent', codec.encode('AuditEvent', audit));
let unknown = '';
try { codec.decode('AuditEvent', Buffer.from([0xc3, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 9])); } catch (err) { unknown = err instanceof FedStreamError ? err.code : String(err); }
console.log(JSON.stringify({ kinds, transport: transport.kind, health: health.success, action: back.action, details: back.details, unknown }));
`;

/** Type-checked with the repository's tsc against the package's .d.ts files; the expected errors prove they are real types. */
const TYPES_CHECK = `
import { FedStreamError, createTransport, type Aggregation, type AuditEventRecord, type ModelUpdateRecord, type Strategy } from 'fedstream';
import { createNode, type CreateNodeOptions } from 'fedstream/node';

export const retriable: boolean = new FedStreamError('CONFIG_INVALID', 'x').retriable;
// @ts-expect-error: not an error code (this line would compile if the types were missing or \`any\`)
new FedStreamError('NOT_A_CODE', 'x');
export const round: number = ({} as ModelUpdateRecord).round;
// @ts-expect-error: a strategy's name is a string
export const name: number = ({} as Strategy).name;
export const action: AuditEventRecord['action'] = 'ROUND_STARTED';
export const transport: ReturnType<typeof createTransport> = createTransport({ kafka: 'localhost:9092' });
export const nodeId: CreateNodeOptions['nodeId'] = 'n';
export type A = Aggregation;
export { createNode };
`;

describe('the packed package', () => {
  let tmp = '';
  let project = '';

  beforeAll(async () => {
    tmp = mkdtempSync(path.join(tmpdir(), 'fedstream-pack-'));
    // prepack builds dist/ first. Its output goes to stdout too, so the tarball is found by listing the directory.
    await run(npm, ['pack', '--pack-destination', tmp], { cwd: ROOT, env: childEnv(), maxBuffer: 64 << 20 });
    const tarball = readdirSync(tmp).find((f) => f.endsWith('.tgz'));
    if (!tarball) throw new Error(`npm pack wrote no tarball into ${tmp}`);
    project = path.join(tmp, 'project');
    mkdirSync(project);
    writeProject(project, path.join(tmp, tarball));
    await run(npm, ['ci', '--offline', '--no-audit', '--no-fund', '--ignore-scripts'], { cwd: project, env: childEnv(), maxBuffer: 64 << 20 });
  });

  afterAll(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('imports fedstream and fedstream/node with plain node and decodes a record with the shipped schemas', async () => {
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', PLAIN_NODE_SCRIPT], { cwd: project, env: childEnv() });
    const out = JSON.parse(stdout.trim().split('\n').at(-1) ?? '') as Record<string, unknown>;
    expect(out).toEqual({
      kinds: ['function', 'function', 'function', 'function', 'function', 'function', 'function'],
      transport: 'memory',
      health: true,
      action: 'ROUND_STARTED',
      details: { k: 'v' },
      unknown: 'CODEC_UNKNOWN_FINGERPRINT',
    });
  });

  it('ships its types: tsc (NodeNext) checks a file that imports from fedstream and fedstream/node', async () => {
    writeFileSync(path.join(project, 'check.ts'), TYPES_CHECK);
    const tsconfig = {
      compilerOptions: {
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        target: 'ES2022',
        strict: true,
        noEmit: true,
        skipLibCheck: true,
        types: ['node'],
        // @types/node is a dev dependency of the repository, not installed in the temporary project.
        typeRoots: [path.join(ROOT, 'node_modules', '@types')],
      },
      files: ['check.ts'],
    };
    writeFileSync(path.join(project, 'tsconfig.json'), JSON.stringify(tsconfig, null, 2));
    const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    const result = await run(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: project, env: childEnv() }).then(
      () => ({ code: 0, output: '' }),
      (err: { code?: number; stdout?: string }) => ({ code: err.code ?? 1, output: err.stdout ?? '' }),
    );
    expect(result).toEqual({ code: 0, output: '' });
  });
});
