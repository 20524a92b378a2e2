/**
 * The training report's Strategy line (report.html of `fedstream demo`, `fedstream report training`) for the demo
 * pipelines of issue 14: it names the strategy the aggregator runs, with the options the manifest sets, and a
 * central-DP wrapper too (whose ε is the report's Privacy line; test/integration/demo.test.ts checks both in a
 * real report.html).
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { strategyFor } from '../../src/aggregator/index.ts';
import { strategyLabel } from '../../src/analytics/reports/training.ts';
import { loadManifest } from '../../src/config/index.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const pipeline = (name: string) => loadManifest(path.join(ROOT, 'pipelines', name));

describe('the Strategy line of the training report', () => {
  it('FedAdam and the trimmed mean: the strategy and the options their manifests set', () => {
    expect(strategyLabel(pipeline('mnist-fedadam.yaml'))).toBe('fedadam (fraction 1, eta 0.01, beta1 0.9, beta2 0.99, tau 0.001)');
    expect(strategyLabel(pipeline('mnist-trimmedmean.yaml'))).toBe('fedtrimmedavg (fraction 1, beta 0.2, memoryBudgetBytes 268435456)');
  });

  it('DP: the wrapped strategy and the central-DP wrapper the aggregator builds around it', () => {
    const m = pipeline('mnist-dp.yaml');
    expect(strategyFor(m).name).toBe('fedavg+dp-adaptive');
    expect(strategyLabel(m)).toBe('fedavg with central DP, adaptive clipping');
    expect(strategyLabel({ ...m, privacy: undefined })).toBe('fedavg');
  });
});
