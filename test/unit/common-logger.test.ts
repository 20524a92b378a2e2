import { PassThrough } from 'node:stream';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { createLogger, humanDuration, humanLine, logFormatFor } from '../../src/common/index.ts';
import { EXPECTED_BROKER_ERRORS, isExpectedBrokerError, pinoLogCreator } from '../../src/transport/kafka/index.ts';
import { roundLine } from '../../src/aggregator/service.ts';
import { trainedLine } from '../../src/node/runtime.ts';

function capture(format: 'json' | 'pretty', level = 'debug'): { logger: ReturnType<typeof createLogger>; lines: () => string[] } {
  const out = new PassThrough();
  let text = '';
  out.on('data', (b: Buffer) => { text += b.toString(); });
  return { logger: createLogger(level, out, format), lines: () => text.split('\n').filter((l) => l.length > 0) };
}

describe('log formats', () => {
  it('auto is pretty on a terminal and JSON elsewhere; the flag and FEDSTREAM_LOG_FORMAT choose; anything else is CONFIG_INVALID', () => {
    expect(logFormatFor(undefined, true, {})).toBe('pretty');
    expect(logFormatFor(undefined, false, {})).toBe('json');
    expect(logFormatFor('json', true, {})).toBe('json');
    expect(logFormatFor(undefined, false, { FEDSTREAM_LOG_FORMAT: 'pretty' })).toBe('pretty');
    expect(logFormatFor('auto', true, { FEDSTREAM_LOG_FORMAT: 'json' })).toBe('pretty');
    expect(() => logFormatFor('fancy', true, {})).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID', path: '--log-format' }));
  });

  it('pretty: one line per event with time, level, component (and node), message and the fields the message does not say', async () => {
    const { logger, lines } = capture('pretty');
    const agg = logger.child({ component: 'aggregator', pipeline: 'acme.mnist' });
    agg.info({ version: 3, round: 3, ms: 4210, participants: 5, rejected: 1, why: 'target reached', evalAccuracy: 0.912 },
      roundLine(3, 'target reached', 3, { ms: 4210, participants: 5, rejected: 1 }, 0.912));
    logger.child({ component: 'node', nodeId: 'node-7', pipeline: 'acme.mnist' }).warn({ round: 4, code: 'wrong_base_version', err: Object.assign(new Error('base version 2 is not the round\'s (3)'), { code: 'AGGREGATOR_REJECTED' }) }, 'multi\nline? no');
    await new Promise((r) => setImmediate(r));
    const got = lines();
    // Two events, two lines: the newline inside the second message is shown as \n.
    expect(got).toHaveLength(2);
    expect(got[0]).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: aggregator: round 3 closed \(target reached\): version 3, 5 updates, 1 rejected, eval accuracy 0\.912, 4\.2 s {2}ms=4210$/);
    expect(got[1]).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] WARN: node node-7: multi\\nline\? no {2}round=4 code=wrong_base_version err="\[AGGREGATOR_REJECTED\] base version 2 is not the round's \(3\)"$/);
  });

  it('json: the same entry as one JSON object with every field, for machines', async () => {
    const { logger, lines } = capture('json');
    logger.child({ component: 'aggregator', pipeline: 'acme.mnist' }).info({ round: 3, version: 3 }, 'round 3 closed');
    await new Promise((r) => setImmediate(r));
    const entry = JSON.parse(lines()[0]!) as Record<string, unknown>;
    expect(entry).toMatchObject({ level: 30, component: 'aggregator', pipeline: 'acme.mnist', round: 3, version: 3, msg: 'round 3 closed' });
  });

  it('humanLine keeps what the message does not say, drops the prefix fields, shortens long values', () => {
    expect(humanLine({ component: 'sink', pipeline: 'p', msg: 'batch written', rows: 12, topics: ['a', 'b'] })).toBe('sink: batch written  rows=12 topics=["a","b"]');
    expect(humanLine({ msg: 'round 12 started', round: 12, deadline: 1_700_000 })).toBe('round 12 started  deadline=1700000');
    expect(humanLine({ msg: 'x', long: 'y'.repeat(200) })).toMatch(/long=y{117}\.\.\.$/);
    expect(humanLine({ msg: 'x', reason: 'has spaces' })).toBe('x  reason="has spaces"');
    expect(humanDuration(33.4)).toBe('33 ms');
    expect(humanDuration(4210)).toBe('4.2 s');
  });

  it('the aggregator\'s and a node\'s round lines read as sentences', () => {
    expect(roundLine(2, 'deadline with 2 of 3 updates', 2, { ms: 1503, participants: 2, rejected: 0 }, undefined))
      .toBe('round 2 closed (deadline with 2 of 3 updates): version 2, 2 updates, 0 rejected, 1.5 s');
    expect(trainedLine(3, 2, 600, 850, { loss: 0.31234, accuracy: 0.9051 }))
      .toBe('round 3: trained on 600 examples from version 2 in 850 ms (loss 0.312, accuracy 0.905); update published');
  });
});

describe('kafkajs entries a healthy cluster produces are debug, not warnings', () => {
  it('every expected text is one of kafkajs\' own error messages (or its CreateTopics aggregate)', () => {
    const require = createRequire(import.meta.url);
    const { errorCodes } = require('kafkajs/src/protocol/error.js') as { errorCodes: Array<{ message: string }> };
    const known = new Set([...errorCodes.map((e) => e.message), 'Topic creation errors']);
    for (const text of EXPECTED_BROKER_ERRORS) expect(known.has(text), text).toBe(true);
  });

  it('topic-already-exists and coordinator-loading answers log at debug; other broker errors stay warnings', async () => {
    const { logger, lines } = capture('json', 'debug');
    const log = pinoLogCreator(logger)(0 as never);
    const entry = (level: number, message: string, error?: string) => log({ namespace: 'Connection', level, label: 'ERROR', log: { message, timestamp: '', logger: 'kafkajs', ...(error ? { error } : {}) } } as never);
    entry(1, 'Response CreateTopics(key: 19, version: 3)', 'Topic creation errors');
    entry(1, 'Response JoinGroup(key: 11, version: 5)', "The coordinator is loading and hence can't process requests for this group");
    entry(2, 'Response InitProducerId(key: 22, version: 1)', 'The group coordinator is not available');
    entry(1, 'Response Produce(key: 0, version: 7)', 'The request included a message larger than the max message size the server will accept');
    await new Promise((r) => setImmediate(r));
    const levels = lines().map((l) => (JSON.parse(l) as { level: number }).level);
    expect(levels).toEqual([20, 20, 20, 40]);
    expect(isExpectedBrokerError('Response X', 'Topic with this name already exists')).toBe(true);
    expect(isExpectedBrokerError('Response X', 'Broker not available')).toBe(false);
  });
});
