/**
 * Hostile-input limits (docs/security.md, "Hostile-input limits"), one per kind, each with the smallest input that
 * breaks it: chunk headers checked before anything is kept, incomplete payloads bounded per topic and expired,
 * offsets released by dropped payloads, numExamples and weight shares bounded, absurd metrics left out.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ChunkedPayloadError, CHUNK_HEADERS, Reassembler, splitPayload } from '../../src/codec/index.ts';
import { CHUNK_SIZE_BOUNDS, LIMIT_DEFAULTS, parseManifest, type Limits } from '../../src/config/index.ts';
import { ConfigError } from '../../src/common/errors.ts';
import { PayloadReader, reassemblerOptions } from '../../src/protocol/wire.ts';
import { UpdatesLog } from '../../src/aggregator/updates-log.ts';
import { WeightedMean } from '../../src/aggregator/strategies/fedavg.ts';
import { saneMetrics, validateUpdate, validationLimits, type CandidateUpdate, type RoundState } from '../../src/aggregator/validate.ts';
import { createMemoryTransport } from '../../src/transport/memory/index.ts';
import type { TransportMessage } from '../../src/transport/index.ts';
import type { Weights } from '../../src/codec/types.ts';

const TOPIC = 'sec.repro.updates';
const SHA = 'a'.repeat(64);

/** A chunk as a hostile writer would send it: any headers, a small value. */
function chunk(offset: number, id: string, h: { index?: string; count: string; size?: string }, value = Buffer.from('x'), partition = 0): TransportMessage {
  const headers: Record<string, Buffer> = {
    [CHUNK_HEADERS.id]: Buffer.from(id),
    [CHUNK_HEADERS.index]: Buffer.from(h.index ?? '0'),
    [CHUNK_HEADERS.count]: Buffer.from(h.count),
    [CHUNK_HEADERS.sha256]: Buffer.from(SHA),
    [CHUNK_HEADERS.size]: Buffer.from(h.size ?? '100'),
  };
  return { topic: TOPIC, partition, offset: String(offset), key: Buffer.from('node-x'), value, headers, timestamp: 0 };
}

function limits(over: Partial<Limits> = {}): Limits {
  return { ...LIMIT_DEFAULTS, ...over };
}

function refusal(fn: () => unknown): ChunkedPayloadError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ChunkedPayloadError) return err;
    throw err;
  }
  throw new Error('expected a ChunkedPayloadError');
}

describe('chunk headers are checked against the limits before anything is kept', () => {
  const pipeline = () => new Reassembler(reassemblerOptions(LIMIT_DEFAULTS));

  it('refuses one chunk declaring 4,294,967,295 chunks of a 100-byte payload (the chunk-count bomb), naming the header', () => {
    const r = pipeline();
    const err = refusal(() => r.accept(chunk(0, 'bomb', { count: '4294967295' })));
    expect(err.code).toBe('CODEC_INVALID');
    expect(err.details).toMatchObject({ header: CHUNK_HEADERS.count, count: 4294967295, size: 100, least: 1, most: 1 });
    expect(err.message).toMatch(/fedstream-chunk-count is 4294967295/);
    expect(r.stats()).toMatchObject({ pendingPayloads: 0, bufferedBytes: 0, refused: 1 });
  });

  it('refuses a count of 2 for a payload of 1,024 bytes (the smallest count above ceil(size / min chunk size))', () => {
    const r = pipeline();
    expect(refusal(() => r.accept(chunk(0, 'p', { count: '2', size: '1024' }))).details).toMatchObject({ header: CHUNK_HEADERS.count, most: 1 });
    expect(r.accept(chunk(1, 'q', { count: '2', size: '1025' })).status).toBe('pending');
  });

  it('refuses a count too small for the largest chunk size: 1 chunk for 1,000,001 bytes', () => {
    const r = pipeline();
    expect(refusal(() => r.accept(chunk(0, 'p', { count: '1', size: String(CHUNK_SIZE_BOUNDS.max + 1) }))).details).toMatchObject({ header: CHUNK_HEADERS.count, least: 2 });
  });

  it('refuses a declared size one byte above limits.maxPayloadBytes as CODEC_LIMIT', () => {
    const r = new Reassembler(reassemblerOptions(limits({ maxPayloadBytes: 4096, maxPendingBytes: 4096 })));
    const err = refusal(() => r.accept(chunk(0, 'p', { count: '3', size: '4097' })));
    expect(err.code).toBe('CODEC_LIMIT');
    expect(err.details).toMatchObject({ header: CHUNK_HEADERS.size, size: 4097, limit: 4096 });
    expect(r.accept(chunk(1, 'q', { count: '3', size: '4096' })).status).toBe('pending');
  });

  it('refuses an index equal to the count', () => {
    const err = refusal(() => pipeline().accept(chunk(0, 'p', { index: '2', count: '2', size: '2000' })));
    expect(err.details).toMatchObject({ header: CHUNK_HEADERS.index, index: 2, count: 2 });
  });

  it('refuses a chunk value one byte larger than any chunk size, as CODEC_LIMIT', () => {
    const r = pipeline();
    const err = refusal(() => r.accept(chunk(0, 'p', { count: '2', size: String(2 * CHUNK_SIZE_BOUNDS.max) }, Buffer.alloc(CHUNK_SIZE_BOUNDS.max + 1))));
    expect(err.code).toBe('CODEC_LIMIT');
    expect(err.details).toMatchObject({ bytes: CHUNK_SIZE_BOUNDS.max + 1, limit: CHUNK_SIZE_BOUNDS.max });
    expect(r.bufferedBytes).toBe(0);
  });

  it('refuses the chunk that brings a payload past its declared size, one byte over', () => {
    const r = pipeline();
    expect(r.accept(chunk(0, 'p', { index: '0', count: '2', size: '2000' }, Buffer.alloc(1500))).status).toBe('pending');
    const err = refusal(() => r.accept(chunk(1, 'p', { index: '1', count: '2', size: '2000' }, Buffer.alloc(501))));
    expect(err.details).toMatchObject({ header: CHUNK_HEADERS.size, size: 2000, bytes: 2001 });
    expect(r.bufferedBytes).toBe(1500);
  });

  it('keeps a repeated identical chunk once: a thousand copies hold no more memory than one', () => {
    const r = pipeline();
    for (let i = 0; i < 1000; i++) r.accept(chunk(i, 'p', { count: '2', size: '2000' }, Buffer.alloc(1000)));
    expect(r.stats()).toMatchObject({ pendingPayloads: 1, bufferedBytes: 1000 });
  });

  it('still reassembles what a pipeline writes at the smallest and largest chunk sizes', () => {
    for (const chunkSize of [CHUNK_SIZE_BOUNDS.min, CHUNK_SIZE_BOUNDS.max]) {
      const payload = randomBytes(chunkSize * 3 + 7);
      const r = pipeline();
      const results = splitPayload(payload, { key: 'k', chunkSize }).map((rec, i) => r.accept({ ...rec, offset: String(i), partition: 0 }));
      const last = results.at(-1)!;
      expect(last.status === 'complete' && last.payload.equals(payload)).toBe(true);
    }
  });
});

describe('incomplete payloads are bounded per topic, expired by age, and every drop is reported', () => {
  it('survives the chunk-count bomb followed by 1,025 never-completed chunk sets (shared/cases/hostile/chunk-count-bomb)', () => {
    const reader = new PayloadReader(LIMIT_DEFAULTS);
    const failures = [reader.accept(chunk(0, 'bomb', { count: '4294967295' }))];
    for (let i = 1; i <= 1025; i++) failures.push(reader.accept(chunk(i, `f${i}`, { count: '2', size: '2000' })));
    const reported = failures.flatMap((f) => f.failures);
    const s = reader.stats(TOPIC);
    // The bomb refused at once; the dangling sets beyond maxPendingPayloads evicted, each reported with its bytes.
    expect(reported[0]!.error.message).toMatch(/fedstream-chunk-count is 4294967295/);
    expect(s.pendingPayloads).toBe(LIMIT_DEFAULTS.maxPendingPayloads);
    expect(s.evicted).toBe(1025 - LIMIT_DEFAULTS.maxPendingPayloads);
    expect(reported).toHaveLength(1 + s.evicted);
    expect(reported.slice(1).every((f) => (f.error as ChunkedPayloadError).code === 'CODEC_CHUNK_MISSING' && f.bytes.toString() === 'x')).toBe(true);
    expect((reported[1]!.error as ChunkedPayloadError).details).toMatchObject({ reason: 'evicted', received: 1, chunkCount: 2, topic: TOPIC });
    expect((reported[1]!.error as ChunkedPayloadError).details).not.toHaveProperty('missing');
  });

  it('holds at most maxPendingBytes of 4,000 incomplete 64 KB chunk sets, by its own counters', () => {
    const l = limits({ maxPendingPayloads: 10_000, maxPendingBytes: 8 * 1024 * 1024, maxPayloadBytes: 1024 * 1024 });
    const reader = new PayloadReader(l);
    const value = Buffer.alloc(64 * 1024);
    let reported = 0;
    for (let i = 0; i < 4000; i++) reported += reader.accept(chunk(i, `s${i}`, { count: '2', size: String(128 * 1024) }, value)).failures.length;
    const s = reader.stats(TOPIC);
    expect(s.peakBufferedBytes).toBeLessThanOrEqual(l.maxPendingBytes);
    expect(s.bufferedBytes).toBe(128 * value.length);
    expect(reported).toBe(4000 - 128);
    expect(s.evicted).toBe(reported);
  });

  it('evicts the least recently active payload first: the one whose latest chunk is oldest', () => {
    let now = 0;
    const r = new Reassembler({ maxPendingPayloads: 2, now: () => ++now });
    r.accept(chunk(0, 'a', { index: '0', count: '3', size: '3' }));
    r.accept(chunk(1, 'b', { index: '0', count: '3', size: '3' }));
    r.accept(chunk(2, 'a', { index: '1', count: '3', size: '3' })); // a is now the more recently active
    const third = r.accept(chunk(3, 'c', { index: '0', count: '3', size: '3' }));
    expect(third.dropped?.map((e) => e.payloadId)).toEqual(['b']);
  });

  it('expires a payload silent for maxPendingAgeMs when the next message arrives, and reports it', () => {
    let now = 0;
    const reader = new PayloadReader(limits({ maxPendingAgeMs: 1000 }), () => now);
    reader.accept(chunk(0, 'old', { count: '2', size: '2000' }));
    now = 999;
    expect(reader.accept(chunk(1, 'young', { count: '2', size: '2000' })).failures).toEqual([]);
    now = 1000;
    const got = reader.accept(chunk(2, 'other', { count: '2', size: '2000' }));
    expect(got.failures.map((f) => [(f.error as ChunkedPayloadError).payloadId, (f.error as ChunkedPayloadError).details.reason])).toEqual([['old', 'expired']]);
    expect(reader.stats(TOPIC)).toMatchObject({ pendingPayloads: 2, expired: 1 });
    // ...and also when that next message is itself refused.
    now = 5000;
    const refused = reader.accept(chunk(3, 'bomb', { count: '4294967295' }));
    expect(refused.failures).toHaveLength(3);
  });

  it('bounds each topic on its own: a flood on one topic evicts nothing on another', () => {
    const reader = new PayloadReader(limits({ maxPendingPayloads: 1 }));
    reader.accept({ ...chunk(0, 'model', { count: '2', size: '2000' }), topic: 'sec.repro.models' });
    for (let i = 0; i < 5; i++) reader.accept(chunk(i, `f${i}`, { count: '2', size: '2000' }));
    expect(reader.stats('sec.repro.models').pendingPayloads).toBe(1);
    expect(reader.stats(TOPIC)).toMatchObject({ pendingPayloads: 1, evicted: 4 });
  });
});

describe('offsets: a dropped incomplete payload no longer holds the commit back', () => {
  it('commits past a refused bomb at once, and past a dangling chunk set once it expires', () => {
    let now = 0;
    const log = new UpdatesLog(createMemoryTransport(), TOPIC, limits({ maxPendingAgeMs: 1000 }), () => now);
    const feed = (m: TransportMessage) => {
      log.consumedMessage(m);
      return log.reader.accept(m);
    };
    feed(chunk(0, 'bomb', { count: '4294967295' }));
    expect(log.offsetsToCommit()).toEqual([{ topic: TOPIC, partition: 0, offset: '1' }]);
    feed(chunk(1, 'dangling', { count: '2', size: '2000' }));
    feed({ ...chunk(2, 'whole', { count: '1' }), headers: {} });
    expect(log.offsetsToCommit()[0]!.offset).toBe('1');
    now = 1000;
    expect(log.reader.expire().map((f) => (f.error as ChunkedPayloadError).payloadId)).toEqual(['dangling']);
    expect(log.offsetsToCommit()[0]!.offset).toBe('3');
  });

  it('commits past an evicted payload', () => {
    const log = new UpdatesLog(createMemoryTransport(), TOPIC, limits({ maxPendingPayloads: 1 }));
    log.consumedMessage(chunk(5, 'first', { count: '2', size: '2000' }));
    log.reader.accept(chunk(5, 'first', { count: '2', size: '2000' }));
    expect(log.offsetsToCommit()[0]!.offset).toBe('5');
    log.consumedMessage(chunk(6, 'second', { count: '2', size: '2000' }));
    expect(log.reader.accept(chunk(6, 'second', { count: '2', size: '2000' })).failures).toHaveLength(1);
    expect(log.offsetsToCommit()[0]!.offset).toBe('6');
  });
});

const w = (...vals: number[][]): Weights => vals.map((v, i) => ({ name: `t${i}`, shape: [v.length], values: Float32Array.from(v) }));

describe('numExamples, weight shares and metrics', () => {
  const state: RoundState = {
    tenant: 't', pipeline: 'p', round: 1, baseVersion: 0, open: true, selectedNodes: new Set(), acceptedIds: new Set(), contributedNodes: new Set(), countedIds: new Map(),
  };
  const update = (numExamples: number): CandidateUpdate => ({ updateId: 'u', nodeId: 'n', tenant: 't', pipeline: 'p', round: 1, baseVersion: 0, numExamples, weights: w([0]) });

  it('rejects numExamples one above limits.maxExamplesPerUpdate as bad_num_examples, naming the key', () => {
    const l = validationLimits(parseManifest(minimalManifest()).limits);
    expect(l.maxExamples).toBe(10_000_000);
    expect(validateUpdate(update(10_000_000), state, w([0]), l)).toBeNull();
    const r = validateUpdate(update(10_000_001), state, w([0]), l);
    expect(r?.code).toBe('bad_num_examples');
    expect(r?.reason).toMatch(/limits\.maxExamplesPerUpdate/);
  });

  it('leaves out metrics that are not finite or beyond maxMetricAbs, keeping the rest', () => {
    const got = saneMetrics({ loss: 1e308, accuracy: -1e308, a: Number.NaN, b: Infinity, c: 1e9, d: -1e9 - 1, e: 0.5 }, 1e9);
    expect(got.kept).toEqual({ c: 1e9, e: 0.5 });
    expect(got.dropped).toEqual(['loss=1e+308', 'accuracy=-1e+308', 'a=NaN', 'b=Infinity', 'd=-1000000001']);
  });

  it('averages a metric over the updates that reported it (issue 13: 10 examples at 0.5 and 30 without it give 0.5)', () => {
    const mean = new WeightedMean(w([0]));
    mean.fold({ updateId: 'a', nodeId: 'node-1', round: 1, numExamples: 10, weights: w([1]), metrics: { accuracy: 0.5, loss: 2 } });
    mean.fold({ updateId: 'b', nodeId: 'node-2', round: 1, numExamples: 30, weights: w([1]), metrics: { loss: 1 } });
    const r = mean.finish([]);
    expect(r.metrics.train_accuracy).toBe(0.5);
    expect(r.metrics.train_loss).toBeCloseTo(1.25, 12);
    expect(r.metrics.totalExamples).toBe(40);
  });

  it('clamps one update above maxWeightShare to exactly that share, and says whose', () => {
    const mean = new WeightedMean(w([0, 0]), {}, { maxWeightShare: 0.5 });
    mean.fold({ updateId: 'honest', nodeId: 'node-1', round: 1, numExamples: 500, weights: w([1, 2]), metrics: { loss: 1 } });
    mean.fold({ updateId: 'liar', nodeId: 'node-2', round: 1, numExamples: 10_000_000, weights: w([0, 0]), metrics: { loss: 3 } });
    const r = mean.finish([]);
    expect(Array.from(r.weights[0]!.values)).toEqual([0.5, 1]);
    expect(r.contributionWeights.get('liar')).toBeCloseTo(0.5, 12);
    expect(r.contributionWeights.get('honest')).toBeCloseTo(0.5, 12);
    expect(r.metrics.train_loss).toBeCloseTo(2, 12);
    expect(r.weightCapped?.get('liar')).toBeCloseTo(10_000_000 / 10_000_500, 12);
  });

  it('clamps to a share above one half exactly, and leaves a round within the share alone', () => {
    const capped = new WeightedMean(w([0]), {}, { maxWeightShare: 0.6 });
    for (const [id, n, x] of [['a', 1, 0], ['b', 1, 0], ['c', 10, 1]] as const) capped.fold({ updateId: id, nodeId: id, round: 1, numExamples: n, weights: w([x]), metrics: {} });
    const r = capped.finish([]);
    expect(r.weights[0]!.values[0]).toBeCloseTo(0.6, 6);
    expect(r.contributionWeights.get('c')).toBeCloseTo(0.6, 12);
    const within = new WeightedMean(w([0]), {}, { maxWeightShare: 0.6 });
    for (const [id, n] of [['a', 2], ['b', 3]] as const) within.fold({ updateId: id, nodeId: id, round: 1, numExamples: n, weights: w([1]), metrics: {} });
    expect(within.finish([]).weightCapped).toBeUndefined();
    const alone = new WeightedMean(w([0]), {}, { maxWeightShare: 0.5 });
    alone.fold({ updateId: 'only', nodeId: 'n', round: 1, numExamples: 7, weights: w([3]), metrics: {} });
    expect(alone.finish([]).contributionWeights.get('only')).toBe(1);
  });
});

describe('the limits in the manifest', () => {
  it('has sane defaults and refuses bad values with their path', () => {
    const m = parseManifest(minimalManifest());
    expect(m.limits).toEqual(LIMIT_DEFAULTS);
    const bad = (l: Record<string, unknown>) => {
      try {
        parseManifest({ ...minimalManifest(), limits: l });
      } catch (err) {
        if (err instanceof ConfigError) return err.path;
      }
      return 'accepted';
    };
    expect(bad({ maxWeightShare: 0.3 })).toBe('limits.maxWeightShare');
    expect(bad({ maxWeightShare: 1.01 })).toBe('limits.maxWeightShare');
    expect(bad({ maxPayloadBytes: 2048, maxPendingBytes: 1024 })).toBe('limits.maxPendingBytes');
    expect(bad({ maxExamplesPerUpdate: 0 })).toBe('limits.maxExamplesPerUpdate');
    expect(bad({ maxChunks: 3 })).toBe('limits');
    expect(bad({ maxWeightShare: 0.5, maxMetricAbs: 10 })).toBe('accepted');
  });

  it('is what every pipeline reader reassembles with', () => {
    expect(reassemblerOptions(limits({ maxPendingAgeMs: 5 }))).toEqual({
      maxPayloadBytes: LIMIT_DEFAULTS.maxPayloadBytes, maxBufferedBytes: LIMIT_DEFAULTS.maxPendingBytes, maxPendingPayloads: LIMIT_DEFAULTS.maxPendingPayloads,
      maxAgeMs: 5, minChunkBytes: CHUNK_SIZE_BOUNDS.min, maxChunkBytes: CHUNK_SIZE_BOUNDS.max,
    });
  });
});

function minimalManifest(): Record<string, unknown> {
  return {
    apiVersion: 'fedstream/v1', tenant: 't', name: 'p',
    model: { inputShape: [4], layers: [{ type: 'dense', units: 2 }] },
    data: { source: 'mnist' },
    rounds: { count: 1, targetUpdates: 1, minUpdates: 1 },
  };
}

describe('one place builds the reassembly limits', () => {
  it('no reader of chunked payloads in src/ builds its own Reassembler or a PayloadReader without the manifest\'s limits', () => {
    const root = path.resolve(import.meta.dirname, '../../src');
    const files = readdirSync(root, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts')).map((f) => path.join(root, f));
    const reassemblers: string[] = [];
    const readers: string[] = [];
    for (const file of files) {
      const text = readFileSync(file, 'utf8');
      const rel = path.relative(root, file);
      if (/new Reassembler\(/.test(text)) reassemblers.push(rel);
      for (const call of text.matchAll(/new PayloadReader\(([^)]*)\)/g)) readers.push(`${rel}: ${call[1]}`);
    }
    expect(reassemblers).toEqual([path.join('protocol', 'wire.ts')]);
    // The aggregator's updates log and its recovery (models, control), the node, the sink's intake and its finish scan, the compliance report.
    expect(readers.length).toBeGreaterThanOrEqual(7);
    for (const r of readers) expect(r).toMatch(/: (\w+\.)*limits(, now)?$/);
  });

  it('no reader in src/ decodes a consumed message\'s value itself: every topic is read through a PayloadReader (any record may be chunked)', () => {
    const root = path.resolve(import.meta.dirname, '../../src');
    const files = readdirSync(root, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts'));
    const direct: string[] = [];
    const consumers: string[] = [];
    for (const rel of files) {
      // The transports deliver messages, the codec and protocol/wire.ts are where values become payloads.
      if (rel.startsWith(`transport${path.sep}`) || rel.startsWith(`codec${path.sep}`) || rel === path.join('protocol', 'wire.ts')) continue;
      const text = readFileSync(path.join(root, rel), 'utf8');
      if (/\b(msg|message|m)\.value\b/.test(text)) direct.push(rel);
      // A file that consumes a topic (readToEnd, a consumer's eachBatch) reassembles, or hands messages to one that does.
      if (rel !== path.join('protocol', 'log.ts') && /readToEnd\(|eachBatch:/.test(text)) consumers.push(`${rel}: ${/new PayloadReader\(|intake\.accept\(|onMessage\(/.test(text) ? 'reassembles' : 'decodes raw values'}`);
    }
    expect(direct).toEqual([]);
    expect(consumers.length).toBeGreaterThanOrEqual(6);
    for (const c of consumers) expect(c).toMatch(/: reassembles$/);
  });
});
