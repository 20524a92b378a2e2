/**
 * Shared helpers of the benchmarks: statistics, the machine's description, progress lines, the benchmark's own
 * Kafka broker, and child processes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

const started = performance.now();

/** A progress line on stderr, with the seconds since the benchmark started. */
export function progress(msg: string): void {
  process.stderr.write(`[bench ${((performance.now() - started) / 1000).toFixed(1).padStart(6)} s] ${msg}\n`);
}

export function median(xs: readonly number[]): number {
  return percentile(xs, 50);
}

/** Nearest-rank percentile (p in 0..100); NaN for an empty sample. */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * s.length);
  return s[Math.min(s.length - 1, Math.max(0, rank - 1))]!;
}

export function round(x: number, digits = 2): number {
  if (!Number.isFinite(x)) return x;
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

export interface Machine {
  cpuModel: string;
  cores: number;
  memoryGb: number;
  node: string;
  v8: string;
  platform: string;
  kernel: string;
  /** 1-minute load average at the start and the end of the run: other work on the machine skews the figures. */
  loadAvgStart: number;
  loadAvgEnd?: number;
}

export function machine(): Machine {
  let cpuModel = os.cpus()[0]?.model ?? 'unknown';
  try {
    const m = /model name\s*:\s*(.+)/.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) cpuModel = m[1]!.trim();
  } catch {
    // not Linux: os.cpus() is good enough
  }
  return {
    cpuModel,
    cores: os.cpus().length,
    memoryGb: round(os.totalmem() / 2 ** 30, 1),
    node: process.version,
    v8: process.versions.v8,
    platform: `${process.platform}-${process.arch}`,
    kernel: os.release(),
    loadAvgStart: round(os.loadavg()[0]!, 2),
  };
}

/** Peak resident set (VmHWM) and current RSS (VmRSS) of a process, in MiB; undefined when /proc has no answer. */
export function procMemory(pid: number): { hwmMb: number; rssMb: number } | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (key: string) => Number(new RegExp(`${key}:\\s*(\\d+) kB`).exec(s)?.[1] ?? NaN);
    return { hwmMb: round(kb('VmHWM') / 1024, 1), rssMb: round(kb('VmRSS') / 1024, 1) };
  } catch {
    return undefined;
  }
}

/** CPU seconds (user + system) a process has used so far, from /proc/<pid>/stat. */
export function procCpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    return ticks / 100;
  } catch {
    return undefined;
  }
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion, collecting its output (stderr also echoed when `echo`). */
export function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; echo?: boolean; timeoutMs?: number; cwd?: string } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd ?? ROOT, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
      if (opts.echo) process.stderr.write(c);
    });
    const timer = opts.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs) : undefined;
    child.once('error', reject);
    child.once('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
    });
  });
}

/** A TypeScript child of the benchmark (tsx loader), talking over IPC. Killed when the benchmark exits. */
export function spawnTsChild(script: string, args: string[], env: NodeJS.ProcessEnv = {}, nodeArgs: string[] = []): ChildProcess {
  const child = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', path.join(ROOT, script), ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

/** The next IPC message from a child that satisfies `pred`, or a rejection when it exits or time runs out. */
export function nextMessage<T>(child: ChildProcess, pred: (m: T) => boolean, timeoutMs: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMsg = (m: unknown) => {
      if (pred(m as T)) {
        cleanup();
        resolve(m as T);
      }
    };
    const onExit = (code: number | null, signal: string | null) => {
      cleanup();
      reject(new Error(`${what}: the child exited (${code ?? signal}) first`));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`${what}: no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    const cleanup = () => {
      clearTimeout(timer);
      child.off('message', onMsg);
      child.off('exit', onExit);
    };
    child.on('message', onMsg);
    child.once('exit', onExit);
  });
}

// ------------------------------------------------------------------------------------------------ broker

/** The pid of the benchmark broker's JVM (for its CPU use), if it runs. */
export function brokerPid(): number | undefined {
  try {
    const dir = path.resolve(ROOT, process.env.FEDSTREAM_KAFKA_DIR ?? path.join('.kafka', 'bench'));
    const pid = Number(readFileSync(path.join(dir, 'broker.pid'), 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

export interface Broker {
  brokers: string;
  stateDir: string;
  release(): Promise<void>;
}

/**
 * The benchmark's own broker (state in .kafka/bench, or FEDSTREAM_KAFKA_DIR), started through scripts/kafka.mjs
 * with a lease, so that the tests' broker is never disturbed and the broker stops when the benchmark is done.
 */
export async function startBroker(): Promise<Broker> {
  const stateDir = path.resolve(ROOT, process.env.FEDSTREAM_KAFKA_DIR ?? path.join('.kafka', 'bench'));
  const env = { ...process.env, FEDSTREAM_KAFKA_DIR: stateDir };
  const script = path.join(ROOT, 'scripts', 'kafka.mjs');
  const lease = `--lease=${process.pid}`;
  const r = await run(process.execPath, [script, 'start', lease], { env, echo: true });
  const brokers = /^KAFKA_BROKERS=(\S+)$/m.exec(r.stdout)?.[1];
  if (r.code !== 0 || !brokers) throw new Error(`could not start the benchmark broker (exit ${r.code}):\n${r.stderr.split('\n').slice(-20).join('\n')}`);
  return {
    brokers,
    stateDir,
    release: async () => {
      await run(process.execPath, [script, 'release', lease], { env });
    },
  };
}
