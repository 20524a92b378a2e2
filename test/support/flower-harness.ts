/**
 * The shared harness of the tests that hold FedStream against Flower 1.42 and Google's dp-accounting (the
 * strategies-flower* tests, privacy-accountant): the venv's python found (or installed) once per file by
 * scripts/flower.mjs, a reference script run with a JSON request on stdin, its JSON answer parsed from stdout.
 *
 * Without flwr: `flowerPython` throws under CI=true (a missing reference tool fails, never skips); elsewhere the
 * reason is kept in `unavailable` and each test skips with it.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll } from 'vitest';
import { flowerPython, runCommand } from '../../scripts/flower.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
/** Calls Flower's strategies' `aggregate_fit` as its server does (FedAvg and kin, the robust ones, clipping). */
export const FLOWER_REFERENCE = path.join(HERE, 'flower_reference.py');
/** Flower's central DP wrappers and dp-accounting's RDP accountant. */
export const DP_REFERENCE = path.join(HERE, 'dp_reference.py');

export interface ReferencePython {
  /** The venv's python, once the file's `beforeAll` has run; undefined when `unavailable`. */
  readonly python: string | undefined;
  /** Why flwr cannot be had (outside CI only); the tests skip with it. */
  readonly unavailable: string | undefined;
  /**
   * Runs `script` with `request` as JSON on stdin and returns its stdout parsed as JSON; throws with the script's
   * exit code and the last lines of its stderr when it fails.
   */
  run<T>(script: string, request: unknown, timeoutMs: number): Promise<T>;
}

/**
 * Registers, in the calling test file, a `beforeAll` (up to 15 min: a first run installs the venv) that finds the
 * venv's python; `tag` prefixes the installer's log lines on stderr.
 */
export function useReferencePython(tag: string): ReferencePython {
  let python: string | undefined;
  let unavailable: string | undefined;
  beforeAll(async () => {
    try {
      python = (await flowerPython({ log: (msg) => process.stderr.write(`[${tag}] ${msg}\n`) })).python;
    } catch (err) {
      if (process.env.CI === 'true') throw err;
      unavailable = (err as Error).message;
    }
  }, 900_000);
  return {
    get python() {
      return python;
    },
    get unavailable() {
      return unavailable;
    },
    async run<T>(script: string, request: unknown, timeoutMs: number): Promise<T> {
      const r = await runCommand(python!, [script], { input: JSON.stringify(request), timeoutMs });
      if (r.code !== 0) throw new Error(`${path.basename(script)} exited ${r.code}: ${r.stderr.trim().split('\n').slice(-5).join(' | ')}`);
      return JSON.parse(r.stdout) as T;
    },
  };
}
