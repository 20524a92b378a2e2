import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, FedStreamError } from '../../src/common/errors.ts';
import { parseManifest, type Manifest } from '../../src/config/manifest.ts';
import { labelHistogram } from '../../src/ml/datasets/dataset.ts';
import { loadDatasetFile, parseDataset } from '../../src/ml/datasets/file.ts';
import { nodeDataset, testDataset } from '../../src/ml/datasets/index.ts';

const FIXTURES = 'test/fixtures/data';

function manifest(data: Record<string, unknown>, model: Record<string, unknown> = { inputShape: [784], layers: [{ type: 'dense', units: 10, activation: 'softmax' }] }): Manifest {
  return parseManifest({ apiVersion: 'fedstream/v1', tenant: 't', name: 'p', model, data, rounds: { count: 1, targetUpdates: 1, minUpdates: 1 } });
}

function thrown(fn: () => unknown): FedStreamError {
  try {
    fn();
  } catch (e) {
    return e as FedStreamError;
  }
  throw new Error('expected an error');
}

const cases: Array<[string, string]> = [
  ['bad-feature.csv', "test/fixtures/data/bad-feature.csv line 4: feature f1 is not a number ('abc')"],
  ['bad-empty.csv', 'test/fixtures/data/bad-empty.csv line 2: feature f1 is empty'],
  ['bad-label.csv', 'test/fixtures/data/bad-label.csv line 3: label 7 is outside 0..2 (numClasses 3)'],
  ['bad-count.csv', 'test/fixtures/data/bad-count.csv line 3: expected 5 fields (label and 4 features), found 4'],
  ['bad-header.csv', 'test/fixtures/data/bad-header.csv line 1: expected a header "label,f0,f1,…", found "x,f0,f1,f2,f3"'],
  ['wrong-width.csv', 'test/fixtures/data/wrong-width.csv line 1 (header): 3 features, but the model expects 4 (the product of model.inputShape)'],
  ['bad-syntax.json', "test/fixtures/data/bad-syntax.json line 4, column 43: JSON syntax error: Unexpected token ']'"],
  ['bad-feature.json', 'test/fixtures/data/bad-feature.json examples[1]: features[2] is not a number ("x")'],
  ['bad-syntax.jsonl', "test/fixtures/data/bad-syntax.jsonl line 3, column 13: JSON syntax error: Expected ',' or '}' after property value"],
  ['bad-width.jsonl', 'test/fixtures/data/bad-width.jsonl line 2: 3 features, but the model expects 4 (the product of model.inputShape)'],
];

describe('data files', () => {
  const load = (file: string, numClasses = 3, features: number | undefined = 4) => loadDatasetFile(`${FIXTURES}/${file}`, { numClasses, ...(features ? { features } : {}) });

  it('reads CSV, CRLF CSV, JSON and JSON Lines to the same examples', () => {
    const csv = load('good.csv');
    expect(csv.n).toBe(3);
    expect(csv.features).toBe(4);
    expect(Array.from(csv.labels)).toEqual([0, 1, 2]);
    expect(csv.labels).toBeInstanceOf(Uint8Array);
    expect(Array.from(csv.index!)).toEqual([2, 3, 5]); // line numbers; the blank line is skipped
    for (const other of ['good.json', 'good.jsonl']) {
      const d = load(other);
      expect(d.xs).toEqual(csv.xs);
      expect(d.labels).toEqual(csv.labels);
    }
    expect(Array.from(load('good-crlf.csv').labels)).toEqual([2, 1]);
    expect(load('good.csv', 1000).labels).toBeInstanceOf(Int32Array);
    expect(labelHistogram(csv)).toEqual([1, 1, 1]);
  });

  it.each(cases)('%s: DATA_INVALID naming file, line and field', (file, message) => {
    const err = thrown(() => load(file));
    expect(err).toBeInstanceOf(FedStreamError);
    expect(err.code).toBe('DATA_INVALID');
    expect(err.message).toBe(message);
    expect(err.details.file).toBe(`${FIXTURES}/${file}`);
  });

  it('checks feature counts between rows even without a model', () => {
    expect(() => parseDataset('{"label":0,"features":[1,2]}\n{"label":1,"features":[1]}\n', { file: 'x.jsonl', numClasses: 2 })).toThrow('x.jsonl line 2: 1 features, but earlier examples have 2');
    expect(() => parseDataset('label,f0\n', { file: 'e.csv', numClasses: 2 })).toThrow('e.csv: no examples');
    expect(parseDataset('\uFEFFlabel,f0\n1,2\n', { file: 'bom.csv', numClasses: 2 }).n).toBe(1);
    expect(() => parseDataset('label,f0\n1,Infinity\n', { file: 'i.csv', numClasses: 2 })).toThrow("i.csv line 2: feature f0 is not a finite number ('Infinity')");
    expect(() => parseDataset('label,f0\n1.5,1\n', { file: 'l.csv', numClasses: 2 })).toThrow('l.csv line 2: label is not an integer ("1.5")');
  });

  it('locates JSON syntax errors where V8 gives no position', () => {
    const text = '{"examples": [\n  {"label": 0, "features": [1, 2]},\n  {"label": 1, "features": [1, 2}]}';
    expect(() => parseDataset(text, { file: 'p.json', numClasses: 2 })).toThrow(/^p\.json line 3, column 33: JSON syntax error/);
  });

  it('reports a missing file as CONFIG_NOT_FOUND', () => {
    expect(thrown(() => load('nope.csv')).code).toBe('CONFIG_NOT_FOUND');
  });

  it('nodeDataset(file) substitutes {nodeId} and resolves against baseDir', () => {
    const csv = manifest({ source: 'file', path: 'nodes/{nodeId}.csv', numClasses: 3 }, { inputShape: [2, 2], layers: [{ type: 'flatten' }, { type: 'dense', units: 3 }] });
    const d = nodeDataset(csv, 'node-1', { baseDir: resolve(FIXTURES) });
    expect(d.n).toBe(2);
    expect(nodeDataset(csv, 1, { baseDir: resolve(FIXTURES) }).xs).toEqual(d.xs);
    const jsonl = manifest({ source: 'file', path: `${FIXTURES}/nodes/{nodeId}.jsonl`, testPath: `${FIXTURES}/good.csv`, numClasses: 3 }, { inputShape: [4], layers: [{ type: 'dense', units: 3 }] });
    expect(Array.from(nodeDataset(jsonl, 'hospital-a').labels)).toEqual([2, 0, 1]);
    expect(testDataset(jsonl)!.n).toBe(3);
    expect(thrown(() => nodeDataset(jsonl, 'node-2')).message).toBe(`data file not found: ${FIXTURES}/nodes/node-2.jsonl (${resolve(FIXTURES, 'nodes/node-2.jsonl')})`);
    expect(() => nodeDataset(jsonl, '../good')).toThrow(ConfigError);
  });
});

describe('docs/node-data.md', () => {
  const doc = readFileSync('docs/node-data.md', 'utf8');

  it('has examples that parse', () => {
    const blocks = [...doc.matchAll(/```(csv|json|jsonl)\n([\s\S]*?)```/g)];
    expect(blocks.map((b) => b[1])).toEqual(['csv', 'json', 'jsonl']);
    for (const [, format, text] of blocks) {
      const d = parseDataset(text!, { file: `doc.${format}`, numClasses: 3, features: 4, format: format as 'csv' | 'json' | 'jsonl' });
      expect(d.n).toBeGreaterThan(1);
    }
  });

  it('lists the messages the fixtures really produce', () => {
    for (const [file, message] of cases) expect(doc).toContain(`| \`${file}\` | \`${message}\` |`);
  });
});
