/**
 * The chaos run's processes: `fedstream aggregator|node|sink` as real OS processes (bin/fedstream.js), each
 * incarnation logging to a file of its own, and a Kafka broker of the run's own (scripts/kafka.mjs on a private
 * state directory) that can be stopped and started again on the same port and data.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

export const ROOT = path.resolve(import.meta.dirname, '../..');

/** One incarnation of a `fedstream` process. */
export interface Proc {
  readonly name: string;
  readonly child: ChildProcess;
  readonly logFile: string;
  /** Exit code, or the signal's name. */
  readonly exited: Promise<number | string>;
  alive(): boolean;
  log(): string;
  tail(lines?: number): string;
}

/** What this process started and must not leave behind if it exits early (a test timeout, Ctrl-C). */
const children = new Set<ChildProcess>();
const brokerPidFiles = new Set<string>();
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const f of brokerPidFiles) {
    try {
      process.kill(Number(readFileSync(f, 'utf8').trim()), 'SIGKILL');
    } catch {
      // stopped already
    }
  }
});

/** Runs `fedstream <args>`; stdout and stderr (JSON logs) go to `<dir>/<name>.log`. */
export function spawnFedstream(args: string[], o: { dir: string; name: string; env?: Record<string, string> }): Proc {
  const logFile = path.join(o.dir, `${o.name}.log`);
  const out = createWriteStream(logFile);
  const child = spawn(process.execPath, [path.join(ROOT, 'bin/fedstream.js'), ...args], {
    cwd: ROOT,
    env: { ...process.env, FEDSTREAM_LOG_LEVEL: 'info', ...o.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.pipe(out, { end: false });
  child.stderr!.pipe(out, { end: false });
  children.add(child);
  const exited = new Promise<number | string>((resolve) => child.on('exit', (code, signal) => { children.delete(child); resolve(code ?? signal ?? -1); }));
  const log = () => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : '');
  return {
    name: o.name,
    child,
    logFile,
    exited,
    alive: () => child.exitCode === null && child.signalCode === null,
    log,
    tail: (lines = 20) => log().split('\n').slice(-lines).join('\n'),
  };
}

/** SIGKILL, then waits for the exit. */
export async function kill9(p: Proc): Promise<void> {
  if (p.alive()) p.child.kill('SIGKILL');
  await p.exited;
}

/** Result of `node scripts/kafka.mjs <command>`. */
async function kafkaScript(command: string, stateDir: string): Promise<string> {
  const child = spawn(process.execPath, [path.join(ROOT, 'scripts/kafka.mjs'), command], {
    cwd: ROOT, env: { ...process.env, FEDSTREAM_KAFKA_DIR: stateDir }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  if (code !== 0) throw new Error(`node scripts/kafka.mjs ${command} (FEDSTREAM_KAFKA_DIR=${stateDir}) exited ${code}:\n${stderr.trim().split('\n').slice(-30).join('\n')}`);
  return stdout;
}

/** The run's own single-node broker. */
export interface ChaosBroker {
  readonly brokers: string;
  /** Stop + start on the same port with the same data. */
  restart(): Promise<void>;
  /** Stops it and deletes its data. */
  clean(): Promise<void>;
}

export async function startBroker(stateDir: string): Promise<ChaosBroker> {
  const stdout = await kafkaScript('start', stateDir);
  const brokers = /^KAFKA_BROKERS=(\S+)$/m.exec(stdout)?.[1];
  if (!brokers) throw new Error(`node scripts/kafka.mjs start printed no KAFKA_BROKERS line (state dir ${stateDir})`);
  const pidFile = path.join(stateDir, 'broker.pid');
  brokerPidFiles.add(pidFile);
  return {
    brokers,
    restart: async () => void (await kafkaScript('restart', stateDir)),
    clean: async () => {
      await kafkaScript('clean', stateDir);
      brokerPidFiles.delete(pidFile);
    },
  };
}

/** Polls `check` every 100 ms until it returns true; throws `what` after `timeoutMs`. */
export async function waitFor(check: () => boolean, timeoutMs: number, what: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
