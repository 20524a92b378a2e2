import { describe, expect, it, vi } from 'vitest';
import { pino } from 'pino';
import { ConfigError, FedStreamError } from '../../src/common/errors.ts';
import { asService } from '../../src/service/lifecycle.ts';
import { EXIT, exitCodeFor, exitWhenIdle, onSignals, runCommand, runService, type ExitSignal, type RunnerProcess } from '../../src/service/runner.ts';
import type { Service, ServiceHealth } from '../../src/common/service.ts';

const silent = pino({ level: 'silent' });

/** A process whose signals the test raises and whose exits it records. */
class FakeProcess implements RunnerProcess {
  exits: number[] = [];
  exitCode: number | undefined;
  written: string[] = [];
  private listeners = new Map<ExitSignal, Array<() => void>>();
  stderr = { write: (text: string) => { this.written.push(text); return true; } };
  once(signal: ExitSignal, listener: () => void) {
    this.listeners.set(signal, [...(this.listeners.get(signal) ?? []), listener]);
  }
  removeListener(signal: ExitSignal, listener: () => void) {
    this.listeners.set(signal, (this.listeners.get(signal) ?? []).filter((l) => l !== listener));
  }
  exit(code: number) {
    this.exits.push(code);
  }
  raise(signal: ExitSignal) {
    const ls = this.listeners.get(signal) ?? [];
    this.listeners.set(signal, []);
    for (const l of ls) l();
  }
  count(): number {
    return [...this.listeners.values()].reduce((n, ls) => n + ls.length, 0);
  }
}

/** A service whose work the test finishes or fails, and which records its lifecycle calls. */
class FakeService implements Service<string> {
  readonly name = 'fake';
  calls: string[] = [];
  finish!: (r: string) => void;
  fail!: (e: unknown) => void;
  readonly done = new Promise<string>((res, rej) => { this.finish = res; this.fail = rej; });
  stopGate: Promise<void> = Promise.resolve();
  constructor() { this.done.catch(() => undefined); }
  async start() { this.calls.push('start'); }
  async stop() { this.calls.push('stop'); await this.stopGate; }
  health(): ServiceHealth { return { healthy: true, state: 'running', detail: 'fake' }; }
}

const tick = () => new Promise((r) => setImmediate(r));

describe('exit codes', () => {
  it('2 for bad configuration, 1 for anything else', () => {
    expect(exitCodeFor(new ConfigError('rounds.count', 'bad'))).toBe(2);
    expect(exitCodeFor(new FedStreamError('CONFIG_NOT_FOUND', 'no file'))).toBe(2);
    expect(exitCodeFor(new FedStreamError('TRANSPORT_CONNECTION', 'down'))).toBe(1);
    expect(exitCodeFor(new Error('bug'))).toBe(1);
  });

  it('runCommand sets the body\'s code, 0 by default, and one line on stderr for a failure', async () => {
    const proc = new FakeProcess();
    await runCommand(async () => undefined, proc, silent);
    expect(proc.exitCode).toBe(0);
    await runCommand(async () => 1, proc, silent);
    expect(proc.exitCode).toBe(1);
    await runCommand(async () => { throw new ConfigError('--rounds', 'expected a number'); }, proc, silent);
    expect(proc.exitCode).toBe(2);
    expect(proc.written.at(-1)).toMatch(/^fedstream: error \[CONFIG_INVALID\]: .*--rounds.*\n$/);
    await runCommand(async () => { throw new Error('boom'); }, proc, silent);
    expect(proc.exitCode).toBe(1);
    expect(proc.written.at(-1)).toBe('fedstream: error [INTERNAL]: boom\n');
    expect(proc.exits).toEqual([]);
  });
});

describe('signals', () => {
  it('first signal stops gracefully then exits 130; a second exits at once', async () => {
    const proc = new FakeProcess();
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    const seen: string[] = [];
    const h = onSignals(async (s) => { seen.push(s); await gate; }, { proc });
    proc.raise('SIGTERM');
    await tick();
    expect(seen).toEqual(['SIGTERM']);
    expect(proc.exits).toEqual([]);
    proc.raise('SIGINT');
    expect(proc.exits).toEqual([EXIT.interrupted]);
    release();
    await expect(h.stopped).resolves.toBe('SIGTERM');
    expect(proc.exits).toEqual([130, 130]);
    h.dispose();
    expect(proc.count()).toBe(0);
  });

  it('the same signal twice also exits at once', async () => {
    const proc = new FakeProcess();
    onSignals(() => new Promise(() => undefined), { proc });
    proc.raise('SIGINT');
    await tick();
    proc.raise('SIGINT');
    expect(proc.exits).toEqual([130]);
  });

  it('exitAfterFirst: false lets the caller go on', async () => {
    const proc = new FakeProcess();
    const h = onSignals(() => undefined, { proc, exitAfterFirst: false });
    proc.raise('SIGINT');
    await expect(h.stopped).resolves.toBe('SIGINT');
    expect(proc.exits).toEqual([]);
  });
});

describe('runService', () => {
  it('starts, waits for done, stops, returns the result and removes its handlers', async () => {
    const proc = new FakeProcess();
    const svc = new FakeService();
    const run = runService(svc, { proc, logger: silent });
    await tick();
    expect(svc.calls).toEqual(['start']);
    expect(proc.count()).toBe(2);
    svc.finish('ok');
    await expect(run).resolves.toEqual({ kind: 'done', result: 'ok' });
    expect(svc.calls).toEqual(['start', 'stop']);
    expect(proc.count()).toBe(0);
    expect(proc.exits).toEqual([]);
  });

  it('a failure stops the service and rejects', async () => {
    const proc = new FakeProcess();
    const svc = new FakeService();
    const run = runService(svc, { proc, logger: silent });
    await tick();
    svc.fail(new FedStreamError('TRANSPORT_CONNECTION', 'down'));
    await expect(run).rejects.toThrow('down');
    expect(svc.calls).toEqual(['start', 'stop']);
    expect(proc.count()).toBe(0);
  });

  it('a signal stops the service and exits 130', async () => {
    const proc = new FakeProcess();
    const svc = new FakeService();
    const onSignal = vi.fn();
    const run = runService(svc, { proc, logger: silent, onSignal });
    await tick();
    proc.raise('SIGINT');
    await expect(run).resolves.toEqual({ kind: 'signal', signal: 'SIGINT' });
    expect(onSignal).toHaveBeenCalledWith('SIGINT');
    expect(svc.calls).toEqual(['start', 'stop']);
    expect(proc.exits).toEqual([130]);
  });

  it('with exitAfterFirst: false a signal returns after the stop, without exiting', async () => {
    const proc = new FakeProcess();
    const svc = new FakeService();
    let release!: () => void;
    svc.stopGate = new Promise((r) => { release = r; });
    const run = runService(svc, { proc, logger: silent, exitAfterFirst: false });
    await tick();
    proc.raise('SIGTERM');
    await tick();
    let settled = false;
    void run.then(() => { settled = true; });
    await tick();
    expect(settled).toBe(false);
    release();
    await expect(run).resolves.toEqual({ kind: 'signal', signal: 'SIGTERM' });
    expect(proc.exits).toEqual([]);
  });
});

describe('exitWhenIdle', () => {
  it('exits with the exit code set so far after the grace period', () => {
    vi.useFakeTimers();
    try {
      const proc = new FakeProcess();
      proc.exitCode = 0;
      exitWhenIdle(2_000, proc);
      vi.advanceTimersByTime(1_999);
      expect(proc.exits).toEqual([]);
      vi.advanceTimersByTime(1);
      expect(proc.exits).toEqual([0]);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('asService', () => {
  function component() {
    let finish!: (n: number) => void;
    let fail!: (e: unknown) => void;
    const done = new Promise<number>((res, rej) => { finish = res; fail = rej; });
    done.catch(() => undefined);
    const calls: string[] = [];
    return {
      c: { done, start: async () => { calls.push('start'); }, stop: async () => { calls.push('stop'); } },
      finish: (n: number) => finish(n), fail: (e: unknown) => fail(e), calls,
    };
  }

  it('reports health as a value through the lifecycle and releases once', async () => {
    const { c, finish, calls } = component();
    const release = vi.fn(async () => undefined);
    const svc = asService('thing', c, { release, figures: () => ({ round: 3 }) });
    expect(svc.health()).toMatchObject({ healthy: false, state: 'created' });
    await svc.start();
    expect(svc.health()).toEqual({ healthy: true, state: 'running', detail: 'thing: running', figures: { round: 3 } });
    finish(7);
    await expect(svc.done).resolves.toBe(7);
    expect(svc.health()).toMatchObject({ healthy: true, state: 'finished' });
    await Promise.all([svc.stop(), svc.stop()]);
    expect(calls).toEqual(['start', 'stop']);
    expect(release).toHaveBeenCalledTimes(1);
  });

  it('a failure is a health value, not an exception', async () => {
    const { c, fail } = component();
    const svc = asService('thing', c);
    await svc.start();
    fail(new Error('disk full'));
    await expect(svc.done).rejects.toThrow('disk full');
    expect(svc.health()).toEqual({ healthy: false, state: 'failed', detail: 'thing: failed: disk full' });
  });

  it('stop before start is safe', async () => {
    const { c, calls } = component();
    const svc = asService('thing', c);
    await svc.stop();
    expect(svc.health()).toMatchObject({ healthy: false, state: 'stopped' });
    expect(calls).toEqual(['stop']);
    await expect(svc.start()).rejects.toThrow('start() after stop()');
  });
});

describe('asService with a component that reports its own health', () => {
  it('asks the component once it started, and reports failures itself', async () => {
    let fail!: (e: unknown) => void;
    const done = new Promise<void>((_, rej) => { fail = rej; });
    done.catch(() => undefined);
    const own: ServiceHealth = { healthy: true, state: 'training', detail: 'training a round', figures: { roundsTrained: 2 } };
    const svc = asService('node node-1', { done, start: async () => undefined, stop: async () => undefined, health: () => own });
    expect(svc.health().state).toBe('created');
    await svc.start();
    expect(svc.health()).toBe(own);
    fail(new Error('broker gone'));
    await expect(svc.done).rejects.toThrow('broker gone');
    expect(svc.health()).toMatchObject({ healthy: false, state: 'failed', detail: 'node node-1: failed: broker gone' });
  });
});
