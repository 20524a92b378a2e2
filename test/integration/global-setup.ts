/**
 * vitest globalSetup of the integration project: makes sure a real Kafka broker is there.
 *
 * - KAFKA_BROKERS set: use that cluster as it is (nothing started, nothing stopped).
 * - Otherwise: `node scripts/kafka.mjs start --lease=<our pid>` with the test state directory (.kafka/test, or
 *   FEDSTREAM_KAFKA_DIR), and `release` at teardown. Several runs at once share that broker; the last one to
 *   finish stops it, unless someone started it by hand (`start` without a lease) or FEDSTREAM_KAFKA_KEEP=1.
 *
 * A broker that cannot start fails the run, on CI and locally alike: integration tests never skip silently.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';
import { FedStreamError } from '../../src/common/errors.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Comma-separated `host:port` list of the brokers the integration tests use. */
    kafkaBrokers: string;
    /** State directory of the broker started by scripts/kafka.mjs, or '' when KAFKA_BROKERS named an external one. */
    kafkaStateDir: string;
  }
}

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const KAFKA_SCRIPT = path.join(ROOT, 'scripts', 'kafka.mjs');

interface ScriptResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `node scripts/kafka.mjs <command> [args]` against a state directory; progress goes through to our stderr. */
export function runKafkaScript(command: string, stateDir: string, args: string[] = []): Promise<ScriptResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [KAFKA_SCRIPT, command, ...args], {
      cwd: ROOT,
      env: { ...process.env, FEDSTREAM_KAFKA_DIR: stateDir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      process.stderr.write(chunk);
    });
    child.once('error', reject);
    child.once('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

export function brokersFrom(stdout: string): string | undefined {
  const last = stdout.trim().split('\n').at(-1) ?? '';
  return /^KAFKA_BROKERS=(\S+)$/.exec(last)?.[1];
}

export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  const external = process.env.KAFKA_BROKERS?.trim();
  if (external) {
    project.provide('kafkaBrokers', external);
    project.provide('kafkaStateDir', '');
    return undefined;
  }

  const stateDir = path.resolve(ROOT, process.env.FEDSTREAM_KAFKA_DIR ?? path.join('.kafka', 'test'));
  const lease = `--lease=${process.pid}`;
  const result = await runKafkaScript('start', stateDir, [lease]);
  const brokers = result.code === 0 ? brokersFrom(result.stdout) : undefined;
  if (!brokers) {
    const where = process.env.CI === 'true' ? 'on CI' : 'locally';
    throw new FedStreamError(
      'BROKER_START',
      `The integration tests need a Kafka broker and none could be started ${where} ` +
        `(node scripts/kafka.mjs start exited ${result.code}). Fix the cause below, or point KAFKA_BROKERS at a running broker.\n` +
        result.stderr.trim().split('\n').slice(-60).join('\n'),
    );
  }

  process.env.KAFKA_BROKERS = brokers;
  project.provide('kafkaBrokers', brokers);
  project.provide('kafkaStateDir', stateDir);

  if (process.env.FEDSTREAM_KAFKA_KEEP === '1') return undefined;
  return async () => {
    const release = await runKafkaScript('release', stateDir, [lease]);
    if (release.code !== 0) process.stderr.write(`[global-setup] releasing the test broker failed (exit ${release.code})\n`);
  };
}
