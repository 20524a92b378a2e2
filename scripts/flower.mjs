#!/usr/bin/env node
/**
 * Flower (`flwr` from PyPI), the reference FedStream's strategies are held to, installed once into
 * .cache/bench-venv: the benchmarks (bench/aggregate.ts) time its aggregation, and the reference-equality tests
 * (test/unit/strategies-flower.test.ts) feed its strategies the same inputs as FedStream's. One installer for both.
 *
 *   flowerPython({ numpyFallback, log })   the venv's python with flwr and numpy importable, installing them on first
 *                                          use (python3 -m venv + pip install flwr==1.42.0 dp-accounting==0.6.0
 *                                          numpy threadpoolctl).
 *                                          With numpyFallback, a machine where flwr does not install gets numpy
 *                                          alone (`flwr: false`; the benchmark then runs its copy of Flower's code);
 *                                          without it, no flwr is an error: a reference test never skips.
 *   node scripts/flower.mjs                installs and prints the python and flwr's version.
 *
 * Pinned: FLWR_VERSION, DP_ACCOUNTING_VERSION. A venv with other versions is brought to them.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** The venv Flower lives in (shared with the benchmarks). */
export const FLOWER_VENV = path.join(ROOT, '.cache', 'bench-venv');
export const FLOWER_PYTHON = path.join(FLOWER_VENV, 'bin', 'python');
/** The Flower release the references are taken from. */
export const FLWR_VERSION = '1.42.0';
/**
 * Google's dp-accounting, the reference of the privacy accountant (test/unit/privacy-accountant.test.ts): pinned, in
 * the same venv, installed with flwr.
 */
export const DP_ACCOUNTING_VERSION = '0.6.0';
const EXTRAS = ['numpy', 'threadpoolctl'];
const REFERENCES = [`dp-accounting==${DP_ACCOUNTING_VERSION}`];

/** Runs a command; resolves with its exit code and output (never rejects on a non-zero exit). */
export function runCommand(cmd, args, { timeoutMs = 600_000, env = process.env, input } = {}) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: ROOT, env, stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c.toString()));
    child.stderr.on('data', (c) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      resolve({ code: 127, stdout, stderr: `${stderr}${err.message}` });
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
    });
    if (input !== undefined) child.stdin.end(input);
  });
}

const lastLine = (text) => text.trim().split('\n').at(-1) ?? '';

async function importable(mod) {
  return existsSync(FLOWER_PYTHON) && (await runCommand(FLOWER_PYTHON, ['-c', `import ${mod}`])).code === 0;
}

async function flwrVersion() {
  if (!existsSync(FLOWER_PYTHON)) return undefined;
  // dp_accounting's version too: a venv without the pinned one counts as not ready, and pip brings it in.
  const r = await runCommand(FLOWER_PYTHON, ['-c', `import flwr, numpy, importlib.metadata as m; assert m.version('dp-accounting') == '${DP_ACCOUNTING_VERSION}'; print(flwr.__version__)`]);
  return r.code === 0 ? r.stdout.trim() : undefined;
}

async function pip(specs) {
  return runCommand(FLOWER_PYTHON, ['-m', 'pip', 'install', '-q', '--disable-pip-version-check', ...specs]);
}

/**
 * The python of .cache/bench-venv with flwr FLWR_VERSION and numpy, installed on first use.
 * Resolves `{ python, flwr: true, version }`; with `numpyFallback`, `{ python, flwr: false }` when only numpy
 * installs. Rejects with an Error naming pip's last line otherwise.
 */
export async function flowerPython({ numpyFallback = false, log = (msg) => process.stderr.write(`[flower] ${msg}\n`) } = {}) {
  const have = await flwrVersion();
  if (have === FLWR_VERSION) return { python: FLOWER_PYTHON, flwr: true, version: have };
  log(`installing flwr==${FLWR_VERSION}, dp-accounting==${DP_ACCOUNTING_VERSION} and numpy into ${path.relative(ROOT, FLOWER_VENV)} (${have ? `it has flwr ${have}` : 'first run only'})`);
  if (!existsSync(FLOWER_PYTHON)) {
    const v = await runCommand('python3', ['-m', 'venv', FLOWER_VENV]);
    if (v.code !== 0) throw new Error(`python3 -m venv ${FLOWER_VENV} failed: ${lastLine(v.stderr)} (apt-get install python3-venv)`);
  }
  const r = await pip([`flwr==${FLWR_VERSION}`, ...REFERENCES, ...EXTRAS]);
  const now = await flwrVersion();
  if (now === FLWR_VERSION) return { python: FLOWER_PYTHON, flwr: true, version: now };
  const why = r.code !== 0 ? lastLine(r.stderr) : `flwr ${now ?? `or dp-accounting==${DP_ACCOUNTING_VERSION} not importable`} after pip install`;
  if (!numpyFallback) throw new Error(`flwr==${FLWR_VERSION} could not be installed into ${FLOWER_VENV}: ${why}`);
  log(`flwr did not install (${why}); trying numpy alone`);
  const np = await pip(EXTRAS);
  if (np.code === 0 && (await importable('numpy'))) return { python: FLOWER_PYTHON, flwr: false };
  throw new Error(`neither flwr nor numpy could be installed into ${FLOWER_VENV}: ${lastLine(np.stderr)}`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const r = await flowerPython();
  process.stdout.write(`python ${r.python}\nflwr ${r.version}\n`);
}
