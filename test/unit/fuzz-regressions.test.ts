// The minimal counterexamples the fuzzers (fuzz-*.test.ts) found, one test each, so that each bug stays fixed
// whatever the fuzzers' seeds explore next.
import { describe, expect, it } from 'vitest';
import { defaultCodec } from '../../src/codec/index.ts';
import { CodecError, ConfigError } from '../../src/common/errors.ts';
import { LIMIT_DEFAULTS, parseManifestText } from '../../src/config/index.ts';
import { PendingBatch } from '../../src/analytics/sink/batch.ts';
import { Intake } from '../../src/analytics/sink/intake.ts';
import { auditRow, contributionRows, countParams, modelVersionRow, rejectedUpdateRow, roundRow, telemetryRow, updateRow } from '../../src/analytics/sink/rows.ts';
import { createLogger } from '../../src/common/index.ts';
import { ephemeralParticipants, pipelineTopics, toRecords } from '../../src/protocol/index.ts';
import { samples } from '../fixtures/avro/samples.ts';

const codec = defaultCodec();

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected an error, got success');
}

describe('fuzz counterexamples: the codec', () => {
  it('a value that cannot be shown as text (no prototype, a bigint inside) is refused with CODEC_INVALID naming the field, not a TypeError', () => {
    const value = Object.assign(Object.create(null) as object, { '': 0n });
    const err = thrown(() => codec.encode('ModelUpdate', { ...samples().ModelUpdate, nodeId: value } as never));
    expect(err).toBeInstanceOf(CodecError);
    expect((err as CodecError).code).toBe('CODEC_INVALID');
    expect((err as CodecError).details.field).toBe('nodeId');
    expect((err as CodecError).message).toContain('[object Object]');
  });
});

describe('fuzz counterexamples: strings without a UTF-8 encoding', () => {
  it.each([
    ['ModelUpdate', { sdkVersion: '\ud800' }, 'sdkVersion'],
    ['TelemetryEvent', { message: 'ok \udfff' }, 'message'],
    ['TelemetryEvent', { labels: { a: '\ud83d' } }, 'labels.a'],
    ['TelemetryEvent', { metrics: { ['\ud800']: 1 } }, 'metrics["\\ud800"]'],
    ['RoundControl', { selectedNodes: ['n', '\udc00x'] }, 'selectedNodes[1]'],
  ] as const)('%s %j: CODEC_INVALID naming %s, never bytes that no reader accepts', (kind, patch, field) => {
    const err = thrown(() => codec.encode(kind, { ...samples()[kind], ...patch } as never));
    expect(err).toBeInstanceOf(CodecError);
    expect((err as CodecError).code).toBe('CODEC_INVALID');
    expect((err as CodecError).details.field).toBe(field);
    expect((err as CodecError).message).toMatch(/lone UTF-16 surrogate/);
  });

  it('a surrogate pair (an emoji) is fine and reads back as itself', () => {
    const value = { ...samples().TelemetryEvent, message: 'ok \ud83d\ude00', labels: { '\ud83d\ude00': 'x' } };
    expect(codec.decode('TelemetryEvent', codec.encode('TelemetryEvent', value))).toEqual(value);
  });
});

describe('fuzz counterexamples: maps given as other objects', () => {
  it.each([
    ['a Map', new Map([['loss', 1]]), 'a Map'],
    ['a Date', new Date(0), 'a Date'],
    ['a Buffer', Buffer.from([1, 2]), 'a Buffer'],
  ])('metrics as %s: CODEC_INVALID naming the field, not a map written empty or with index keys', (_name, metrics, what) => {
    const err = thrown(() => codec.encode('TelemetryEvent', { ...samples().TelemetryEvent, metrics } as never));
    expect(err).toBeInstanceOf(CodecError);
    expect((err as CodecError).details.field).toBe('metrics');
    expect((err as CodecError).message).toContain(`got ${what}`);
  });

  it('a map without a prototype is a plain map', () => {
    const metrics = Object.assign(Object.create(null) as Record<string, number>, { loss: 0.5 });
    expect(codec.decode('TelemetryEvent', codec.encode('TelemetryEvent', { ...samples().TelemetryEvent, metrics })).metrics).toEqual({ loss: 0.5 });
  });
});

describe('fuzz counterexamples: enum symbols', () => {
  it.each(['toString', '__proto__', 'constructor', 'hasOwnProperty'])('action %j: CODEC_INVALID naming the field, never written as the first symbol', (action) => {
    const err = thrown(() => codec.encode('AuditEvent', { ...samples().AuditEvent, action } as never));
    expect(err).toBeInstanceOf(CodecError);
    expect((err as CodecError).details.field).toBe('action');
    expect((err as CodecError).message).toContain('expected one of UPDATE_ACCEPTED|');
  });

  it('an array of prototype-less objects as a symbol: CODEC_INVALID naming the field, not avsc\'s TypeError', () => {
    const err = thrown(() => codec.encode('AuditEvent', { ...samples().AuditEvent, action: [Object.create(null)] } as never));
    expect(err).toBeInstanceOf(CodecError);
    expect((err as CodecError).details.field).toBe('action');
  });
});

describe('fuzz counterexamples: manifest YAML', () => {
  it('an alias used before its anchor: a ConfigError naming its line and column, not a ReferenceError', () => {
    const err = thrown(() => parseManifestText('<<: *a\napiVersion: fedstream/v1\n', 'm.yaml'));
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).message).toMatch(/^m\.yaml: YAML cannot be read at line 1, column 5: .*Unresolved alias.*: a$/);
  });

  it('aliases that expand exponentially (a "billion laughs"): a ConfigError at once, nothing expanded', () => {
    const bomb = ['a0: &a0 [x, x, x, x, x, x, x, x, x, x]', ...Array.from({ length: 9 }, (_, i) => `a${i + 1}: &a${i + 1} [${Array<string>(10).fill(`*a${i}`).join(', ')}]`)].join('\n');
    const started = Date.now();
    const err = thrown(() => parseManifestText(bomb, 'bomb.yaml'));
    expect(Date.now() - started).toBeLessThan(2000);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).message).toMatch(/YAML cannot be read at line \d+, column \d+: Excessive alias count/);
  });
});

describe('fuzz counterexamples: manifest text nested without end', () => {
  it.each([
    ['flow sequences', '['.repeat(2000) + ']'.repeat(2000), /line 1, column 66: nested more than 64 levels deep/],
    ['flow mappings', '{a: '.repeat(1000) + '}'.repeat(1000), /line 1, column \d+: nested more than 64 levels deep/],
    ['compact block sequences', '- '.repeat(3000) + 'x', /line 1, column \d+: nested more than 64 levels deep/],
    ['block mappings', Array.from({ length: 200 }, (_, i) => `${' '.repeat(2 * i)}a:`).join('\n'), /line \d+, column \d+: nested more than 64 levels deep/],
    ['megabytes', `# ${'x'.repeat(1024 * 1024)}`, /\(root\): \d+ bytes of text, more than a manifest may have/],
  ])('%s: a ConfigError naming where, before the YAML parser recurses near the end of the stack', (_name, text, message) => {
    const err = thrown(() => parseManifestText(text, 'deep.yaml'));
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).message).toMatch(message);
  });
});

describe('fuzz counterexamples: the sink\'s rows', () => {
  const scope = { tenant: 't', pipeline: 'p' };
  const source = { topic: 't.p.control', partition: 0, offset: '5' };
  const rowError = (fn: () => unknown): CodecError => {
    const err = thrown(fn);
    expect(err).toBeInstanceOf(CodecError);
    return err as CodecError;
  };

  it('a count beyond 2^32 - 1 for a UInt32 column (which ClickHouse wraps: 2^32 + 5 became 5) is CODEC_INVALID naming the field and column', () => {
    const err = rowError(() => roundRow(scope, { ...samples().RoundControl, minUpdates: 2 ** 32 + 5 }, source));
    expect(err.details).toMatchObject({ field: 'minUpdates', column: 'min_updates' });
    expect(err.message).toContain('4294967301');
  });

  it.each([
    ['an audit event\'s version -1', () => auditRow(scope, { ...samples().AuditEvent, version: -1 }, source), 'version'],
    ['a telemetry round -3', () => telemetryRow(scope, { ...samples().TelemetryEvent, round: -3 }, source), 'round'],
    ['a contributor\'s numExamples -1', () => contributionRows(scope, { ...samples().ModelVersion, contributors: [{ updateId: 'u', nodeId: 'n', numExamples: -1, weight: 1 }] }, source), 'contributors[0].numExamples'],
    ['a parent version -2', () => modelVersionRow(scope, { ...samples().ModelVersion, parentVersion: -2 }, source), 'parentVersion'],
  ] as const)('%s for a UInt64 column (which ClickHouse refuses, batch and all) is CODEC_INVALID naming the field', (_name, fn, field) => {
    expect(rowError(fn).details.field).toBe(field);
  });

  it('an offset beyond 2^53 - 1 is refused, not rounded into another record\'s deduplication key', () => {
    const err = rowError(() => telemetryRow(scope, samples().TelemetryEvent, { ...source, offset: '9007199254740993' }));
    expect(err.details).toMatchObject({ column: 'kafka_offset', value: '9007199254740993' });
  });

  it('a tensor shape whose product passes 2^53 - 1 is refused naming the shape, not rounded into num_params', () => {
    const tensors = [{ name: 'w', shape: [3 ** 19, 3 ** 19], dtype: 'FLOAT32' as const, scale: 1, data: Buffer.alloc(0) }];
    expect(rowError(() => updateRow(scope, { ...samples().ModelUpdate, tensors }, 10, source)).details).toMatchObject({ field: 'tensors[0].shape', column: 'num_params' });
    expect(countParams([{ ...tensors[0]!, shape: [2 ** 26, 2 ** 26] }])).toBe(2 ** 52);
  });

  it('a metric of −0 stays −0 (JSON.stringify would write 0)', () => {
    expect(JSON.stringify(telemetryRow(scope, { ...samples().TelemetryEvent, metrics: { loss: -0 } }, source).metrics)).toBe('{"loss":"-0"}');
  });

  it('a rejection naming malformed source coordinates is keyed by the audit record\'s own, not by offset 0 or NaN', () => {
    const e = { ...samples().AuditEvent, action: 'UPDATE_REJECTED' as const, details: { code: 'norm_bound', sourceTopic: 't.p.updates', sourcePartition: '0', sourceOffset: 'x', bytes: '-5' } };
    expect(rejectedUpdateRow(scope, e, source)).toMatchObject({ kafka_topic: 't.p.control', kafka_partition: 0, kafka_offset: 5, raw_size: 0 });
  });

  it('a model version whose contributor cannot be stored is dead-lettered whole: no model_versions row without its contributions', () => {
    const topics = pipelineTopics({ tenant: 't', name: 'p' });
    const team = ephemeralParticipants({ participants: undefined }, []);
    const intake = new Intake({
      scope, topics, limits: LIMIT_DEFAULTS, chunkSizeBytes: 1024 * 1024, deadLetterUpdates: true, log: createLogger('silent'),
      onUnreadable: () => undefined, registry: team.registry, onRefused: () => undefined,
    });
    const version = { ...samples().ModelVersion, contributors: [{ updateId: 'u', nodeId: 'n', numExamples: -1, weight: 1 }] };
    const [record] = toRecords(topics.models, 'ModelVersion', version, 'k', 1024 * 1024, {}, team.signerFor('aggregator'));
    const headers = Object.fromEntries(Object.entries(record?.headers ?? {}).map(([h, v]) => [h, Buffer.from(v)]));
    const batch = new PendingBatch();
    intake.accept({ topic: topics.models, partition: 0, offset: '3', key: null, value: record?.value as Buffer, headers, timestamp: 0 }, batch);
    expect(batch.rows.get('model_versions')).toBeUndefined();
    expect(batch.rows.get('contributions')).toBeUndefined();
    expect(batch.rows.get('rejected_updates')?.[0]?.row).toMatchObject({ reason_code: 'CODEC_INVALID', kafka_offset: 3 });
    expect(batch.deadLetters).toHaveLength(1);
  });
});
