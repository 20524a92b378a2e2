import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { compose, loadPipeline } from '../../src/service/index.ts';
import { MemoryCluster } from '../../src/transport/index.ts';

const dir = mkdtempSync(join(tmpdir(), 'fedstream-wiring-'));
const PIPELINE = join(import.meta.dirname, '../../pipelines/mnist-fedavg.yaml');
const silent = pino({ level: 'silent' });

function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({ write(chunk, _enc, cb) { lines.push(JSON.parse(String(chunk))); cb(); } });
  return { lines, logger: pino({ level: 'warn' }, stream) };
}

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('loadPipeline', () => {
  it('applies flag overrides over the file', () => {
    const m = loadPipeline(PIPELINE, { rounds: 3, tenant: 'acme' }, { logger: silent, env: {} });
    expect(m.rounds.count).toBe(3);
    expect(m.tenant).toBe('acme');
  });

  it('logs what loading had to say (legacy keys) as warnings', async () => {
    const raw = parse(readFileSync(PIPELINE, 'utf8')) as Record<string, Record<string, unknown>>;
    const count = (raw.rounds as { count: number }).count;
    delete (raw.rounds as Record<string, unknown>).count;
    raw.strategy = { ...raw.strategy, rounds: count };
    const file = join(dir, 'legacy.yaml');
    writeFileSync(file, stringify(raw));
    const { lines, logger } = capture();
    const m = loadPipeline(file, {}, { logger, env: {} });
    expect(m.rounds.count).toBe(count);
    await new Promise((r) => setImmediate(r));
    expect(lines.map((l) => l.msg)).toContain('strategy.rounds is now rounds.count; the manifest still loads, but move the key');
    expect(lines[0]).toMatchObject({ level: 40, manifest: file });
  });

  it('chooses overrides after a look at the file', () => {
    const m = loadPipeline(PIPELINE, (file) => (file.data.source === 'mnist' ? { nodes: 4 } : {}), { logger: silent, env: {} });
    expect(m.data.source === 'mnist' && m.data.nodes).toBe(4);
  });
});

describe('Composition', () => {
  it('gives each component a transport on its own memory log, shared within the composition only', async () => {
    const m = loadPipeline(PIPELINE, {}, { logger: silent, env: {} });
    const a = compose({ manifest: m, logger: silent });
    const b = compose({ manifest: m, logger: silent });
    expect(a.kafka).toBe(false);
    const t1 = await a.transport('aggregator');
    const t2 = await a.transport('sink');
    const other = await b.transport('sink');
    expect(t1.kind).toBe('memory');
    await t1.admin().createTopics([{ topic: 'wiring-test' }]);
    expect(await t2.admin().listTopics()).toContain('wiring-test');
    expect(await other.admin().listTopics()).not.toContain('wiring-test');
    await a.close();
    await b.close();
    expect(() => t1.admin()).toThrow(/closed/);
  });

  it('uses the memory log it is handed', async () => {
    const m = loadPipeline(PIPELINE, {}, { logger: silent, env: {} });
    const memory = new MemoryCluster();
    const wiring = compose({ manifest: m, logger: silent, memory });
    const t = await wiring.transport();
    await t.admin().createTopics([{ topic: 'handed' }]);
    expect(memory.topics.has('handed')).toBe(true);
    await wiring.close();
  });

  it('picks Kafka when the manifest names brokers, with <tenant>.<pipeline>.<role> client ids, without connecting', async () => {
    const m = loadPipeline(PIPELINE, { kafka: '127.0.0.1:1' }, { logger: silent, env: {} });
    const wiring = compose({ manifest: m, logger: silent });
    expect(wiring.kafka).toBe(true);
    const t = await wiring.transport('node-1');
    expect(t.kind).toBe('kafka');
    await wiring.close();
  });
});
