/** docs/strategies.md's differential-privacy options table against config/privacy.ts: every option documented, with the default the schema fills in. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_CLIPPING_NORM, strategyFor } from '../../src/aggregator/index.ts';
import { centralDpSchema, localDpSchema, loadManifest, privacySchema } from '../../src/config/index.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const doc = readFileSync(path.join(ROOT, 'docs', 'strategies.md'), 'utf8');

function rows(): Map<string, string> {
  const start = doc.indexOf('\n| option | meaning | unit | range | default |', doc.indexOf('## Differential privacy')) + 1;
  expect(start).toBeGreaterThan(0);
  const out = new Map<string, string>();
  for (const row of doc.slice(start).split('\n').slice(2)) {
    if (!row.startsWith('|')) break;
    const cells = row.split('|').slice(1, -1).map((c) => c.trim());
    out.set(cells[0]!.replace(/`/g, ''), cells[4]!);
  }
  return out;
}

describe('docs/strategies.md, differential privacy', () => {
  it('documents every option of the privacy section, and no other, with its default', () => {
    const r = rows();
    const keys = [
      ...Object.keys(centralDpSchema.shape).map((k) => `central.${k}`),
      ...Object.keys(localDpSchema.shape).map((k) => `local.${k}`),
      'population', 'budget.epsilon', 'budget.delta',
    ];
    expect([...r.keys()].sort()).toEqual(keys.sort());
    const parsed = privacySchema.parse({ central: { noiseMultiplier: 1, numSampledClients: 4 } }).central!;
    for (const [k, v] of Object.entries(parsed)) {
      if (typeof v === 'number' && k !== 'noiseMultiplier' && k !== 'numSampledClients') expect(r.get(`central.${k}`), k).toBe(`\`${v}\``);
    }
    expect(r.get('central.clipping')).toBe(`\`${parsed.clipping}\``);
    expect(r.get('central.clippingNorm')).toBe(`\`${DEFAULT_CLIPPING_NORM}\``);
    for (const k of ['central.noiseMultiplier', 'central.numSampledClients', 'local.clippingNorm', 'local.sensitivity', 'local.epsilon', 'local.delta']) expect(r.get(k), k).toBe('required');
  });

  it('pipelines/mnist-dp.yaml wraps its strategy in central DP', () => {
    expect(strategyFor(loadManifest(path.join(ROOT, 'pipelines', 'mnist-dp.yaml'))).name).toBe('fedavg+dp-adaptive');
  });
});
