/**
 * Turns a component with a start/stop/done lifecycle (the aggregator, a node, the sink) into a {@link Service}:
 * it tracks the health state, makes `stop()` safe to repeat, and releases what the composition root opened for
 * the component (its transport) once the component has stopped.
 */
import { FedStreamError, type Service, type ServiceHealth } from '../common/index.ts';

/**
 * What a component offers; `done` resolves with its result (or never, for one that runs until stopped). A component
 * that reports its own health (a {@link Service} already) is asked for it; otherwise the lifecycle state is reported.
 */
export interface Lifecycle<Result> {
  start(): Promise<void>;
  stop(): Promise<void>;
  readonly done: Promise<Result>;
  health?(): ServiceHealth;
}

/** A Service that also hands out the component it drives (for callers that want its own API, as the demo does). */
export interface ComponentService<Result, Component> extends Service<Result> {
  readonly component: Component;
}

export interface AsServiceOptions {
  /** Runs after the component stopped (closing its transport, ...). */
  release?: () => Promise<void>;
  /** Figures for health(), read when asked. */
  figures?: () => Record<string, number | string>;
}

export function asService<Result, Component extends Lifecycle<Result>>(
  name: string,
  component: Component,
  options: AsServiceOptions = {},
): ComponentService<Result, Component> {
  let state: 'created' | 'starting' | 'running' | 'finished' | 'stopped' | 'failed' = 'created';
  let failure: string | undefined;
  let stopping: Promise<void> | undefined;
  const done = component.done;
  done.then(
    () => { if (state === 'starting' || state === 'running') state = 'finished'; },
    (err: unknown) => {
      if (state === 'stopped') return;
      state = 'failed';
      failure = err instanceof Error ? err.message : String(err);
    },
  );
  const detail = (): string => {
    switch (state) {
      case 'created': return `${name}: not started`;
      case 'starting': return `${name}: starting`;
      case 'running': return `${name}: running`;
      case 'finished': return `${name}: finished its work`;
      case 'stopped': return `${name}: stopped`;
      case 'failed': return `${name}: failed: ${failure ?? 'unknown error'}`;
    }
  };
  return {
    name,
    component,
    done,
    async start() {
      if (stopping) throw new FedStreamError('INTERNAL', `${name}: start() after stop()`);
      state = 'starting';
      try {
        await component.start();
      } catch (err) {
        state = 'failed';
        failure = err instanceof Error ? err.message : String(err);
        throw err;
      }
      if (state === 'starting') state = 'running';
    },
    stop() {
      stopping ??= (async () => {
        if (state === 'starting' || state === 'running' || state === 'created') state = 'stopped';
        try {
          await component.stop();
        } finally {
          await options.release?.();
        }
      })();
      return stopping;
    },
    health(): ServiceHealth {
      if (component.health && state !== 'created' && state !== 'failed') {
        try {
          return component.health();
        } catch {
          // Health is a value: a component that throws here is reported by its lifecycle state below.
        }
      }
      let figures: Record<string, number | string> | undefined;
      try {
        figures = options.figures?.();
      } catch {
        figures = undefined;
      }
      return { healthy: state === 'starting' || state === 'running' || state === 'finished', state, detail: detail(), ...(figures ? { figures } : {}) };
    },
  };
}
