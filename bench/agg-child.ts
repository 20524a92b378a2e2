/**
 * The aggregator under benchmark, as its own process: the real Aggregator class with FedAvg on the real
 * broker, initial weights of the benchmark's shape (zeros, no tfjs, no evaluation).
 *
 * Talks to bench/decision.ts and bench/scale.ts over IPC:
 *   → { type: 'ready' }                                   started, version 0 published
 *   → { type: 'fold', round, count, at }                  after each accepted update (when `reportFolds`)
 *   → { type: 'version', version, round, breakdown }      after each published version, with where the time went
 *   → { type: 'done', hwmMb, rssMb, ... }                 the last round is decided; then the process exits
 *
 * `breakdown` (ms, epoch-based clock `performance.timeOrigin + performance.now()` so that the parent can line it
 * up with its own): last fold, finish() (the float32 average), building the records (pack, sha256, Avro),
 * the transaction's sends, sendOffsets and commit.
 */
import { readFileSync } from 'node:fs';
import { Aggregator } from '../src/aggregator/index.ts';
import { FedAvg, strategyFor, trainingConfig } from '../src/aggregator/index.ts';
import type { AcceptedUpdate, Aggregation, Rejection, RoundContext, Strategy } from '../src/aggregator/strategy.ts';
import type { Weights } from '../src/codec/types.ts';
import { createLogger } from '../src/common/logger.ts';
import { parseManifest } from '../src/config/manifest.ts';
import { createKafkaTransport } from '../src/transport/kafka/index.ts';
import type { Producer, ProducerOptions, Transaction, Transport } from '../src/transport/types.ts';

export interface AggChildConfig {
  brokers: string;
  manifest: unknown;
  shapes: { name: string; shape: number[] }[];
  reportFolds: boolean;
  /** A strategy section (`{ name: 'fedmedian', memoryBudgetBytes }`, bench/robust.ts); absent: FedAvg. */
  strategy?: Record<string, unknown>;
}

const config = JSON.parse(process.argv[2] ?? '{}') as AggChildConfig;
const send = (m: unknown) => process.send?.(m);
const now = () => performance.timeOrigin + performance.now();

interface RoundTimes {
  lastFold: number;
  finishStart: number;
  finishEnd: number;
  firstSend: number;
  sends: number;
  sendMs: number;
  offsetsMs: number;
  commitStart: number;
  commitEnd: number;
}
let cur: RoundTimes = blank();
function blank(): RoundTimes {
  return { lastFold: 0, finishStart: 0, finishEnd: 0, firstSend: 0, sends: 0, sendMs: 0, offsetsMs: 0, commitStart: 0, commitEnd: 0 };
}

/** FedAvg, with the fold and finish calls timed. */
class TimedStrategy implements Strategy {
  readonly name: string;
  constructor(private readonly inner: Strategy) {
    this.name = inner.name;
  }
  configureRound(ctx: RoundContext) {
    return this.inner.configureRound(ctx);
  }
  begin(base: Weights, ctx: RoundContext): Aggregation {
    const agg = this.inner.begin(base, ctx);
    return {
      get count() {
        return agg.count;
      },
      // The aggregator decodes into the strategy's memory when it offers some: pass that through untimed.
      reserve: () => agg.reserve?.(),
      release: (values: Float32Array[] | undefined) => agg.release?.(values),
      flush: () => agg.flush?.(),
      // A robust strategy beyond its budget re-reads the round from the log here: timed as part of finish.
      ...(agg.settle ? {
        settle: async () => {
          cur.finishStart = now();
          await agg.settle!();
        },
      } : {}),
      dispose: () => agg.dispose?.(),
      fold(u: AcceptedUpdate) {
        agg.fold(u);
        cur.lastFold = now();
        if (config.reportFolds) send({ type: 'fold', round: ctx.round, count: agg.count, at: cur.lastFold });
      },
      finish(rejections: Rejection[]) {
        if (!agg.settle) cur.finishStart = now();
        const r = agg.finish(rejections);
        cur.finishEnd = now();
        return r;
      },
    };
  }
}

/** The transport, with the transactional producer's calls timed. */
function timedTransport(t: Transport): Transport {
  const timeTx = (tx: Transaction): Transaction => ({
    send: async (records) => {
      const t0 = now();
      if (cur.firstSend === 0) cur.firstSend = t0;
      try {
        return await tx.send(records);
      } finally {
        cur.sends++;
        cur.sendMs += now() - t0;
      }
    },
    sendOffsets: async (groupId, offsets) => {
      const t0 = now();
      try {
        return await tx.sendOffsets(groupId, offsets);
      } finally {
        cur.offsetsMs += now() - t0;
      }
    },
    commit: async () => {
      cur.commitStart = now();
      try {
        return await tx.commit();
      } finally {
        cur.commitEnd = now();
      }
    },
    abort: () => tx.abort(),
  });
  return {
    kind: t.kind,
    admin: () => t.admin(),
    consumer: (o) => t.consumer(o),
    health: () => t.health(),
    close: () => t.close(),
    producer: (o?: ProducerOptions): Producer => {
      const p = t.producer(o);
      return {
        connect: () => p.connect(),
        send: (r) => p.send(r),
        disconnect: () => p.disconnect(),
        transaction: async () => timeTx(await p.transaction()),
        checkFenced: (groupId) => p.checkFenced(groupId),
      };
    },
  };
}

function memory(): { hwmMb: number; rssMb: number } {
  const s = readFileSync('/proc/self/status', 'utf8');
  const kb = (key: string) => Number(new RegExp(`${key}:\\s*(\\d+) kB`).exec(s)?.[1] ?? NaN);
  return { hwmMb: kb('VmHWM') / 1024, rssMb: kb('VmRSS') / 1024 };
}

async function main(): Promise<void> {
  const manifest = parseManifest(config.manifest);
  const logger = createLogger(process.env.BENCH_LOG_LEVEL ?? 'warn');
  const transport = timedTransport(createKafkaTransport({ brokers: config.brokers.split(','), clientId: 'bench-aggregator', logger }));
  const inner = config.strategy ? strategyFor({ ...manifest, strategy: config.strategy as typeof manifest.strategy }) : new FedAvg({ config: trainingConfig(manifest), fraction: 1, seed: 1 });
  const strategy = new TimedStrategy(inner);
  const agg = new Aggregator({
    manifest,
    transport,
    strategy,
    logger,
    initialWeights: async () => config.shapes.map((s) => ({ name: s.name, shape: s.shape, values: new Float32Array(s.shape.reduce((a, b) => a * b, 1)) })),
    onVersion: (v, info) => {
      const c = cur;
      cur = blank();
      send({
        type: 'version',
        version: v.version,
        round: info.round,
        participants: info.participants,
        rejected: info.rejected,
        roundMs: info.ms,
        metrics: v.metrics,
        at: now(),
        breakdown: {
          lastFoldAt: c.lastFold,
          finishMs: c.finishEnd - c.finishStart,
          lastFoldToFinishMs: c.finishStart - c.lastFold,
          buildRecordsMs: c.firstSend - c.finishEnd,
          sends: c.sends,
          sendMs: c.sendMs,
          sendOffsetsMs: c.offsetsMs,
          commitMs: c.commitEnd - c.commitStart,
          commitEndAt: c.commitEnd,
          lastFoldToCommitEndMs: c.commitEnd - c.lastFold,
        },
      });
    },
  });
  await agg.start();
  send({ type: 'ready', ...memory() });
  const summary = await agg.done;
  await agg.stop();
  await transport.close();
  send({ type: 'done', summary, ...memory() });
  // Give the IPC message time to leave, then exit (normally, so that --cpu-prof writes its profile).
  setTimeout(() => {
    process.disconnect?.();
    process.exit(0);
  }, 200);
}

main().catch((err: unknown) => {
  process.stderr.write(`agg-child: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
