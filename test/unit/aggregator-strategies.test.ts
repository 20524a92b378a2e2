import { describe, expect, it } from 'vitest';
import { FedAvg, STRATEGY_NAMES, parseStrategySection, strategyFor, strategySectionSchema } from '../../src/aggregator/index.ts';
import { codec } from '../../src/protocol/wire.ts';
import { encodeRoundConfig } from '../../src/protocol/round-config.ts';
import { ConfigError } from '../../src/common/errors.ts';
import { parseManifest } from '../../src/config/manifest.ts';

const manifest = (strategy: Record<string, unknown>) => parseManifest({
  apiVersion: 'fedstream/v1', tenant: 't', name: 'p',
  model: { inputShape: [4], seed: 9, layers: [{ type: 'dense', units: 2, activation: 'softmax' }] },
  data: { source: 'mnist', nodes: 10 },
  training: { epochs: 2, batchSize: 16, learningRate: 0.05, optimizer: 'adam' },
  rounds: { count: 2, targetUpdates: 3, minUpdates: 2 },
  strategy,
});

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('the strategy registry', () => {
  it('parses a strategy section with the strategy\'s own schema, defaults filled in', () => {
    expect(STRATEGY_NAMES).toEqual(['fedavg', 'fedprox', 'fedavgm', 'fedadagrad', 'fedadam', 'fedyogi', 'fedmedian', 'fedtrimmedavg', 'krum']);
    expect(parseStrategySection({ name: 'fedavg' })).toEqual({ name: 'fedavg', fraction: 1, clipNorm: 0 });
    expect(parseStrategySection({ name: 'fedavg', fraction: 0.25 })).toEqual({ name: 'fedavg', fraction: 0.25, clipNorm: 0 });
    expect(strategySectionSchema().parse({ name: 'fedavg', fraction: 0.5 })).toEqual({ name: 'fedavg', fraction: 0.5, clipNorm: 0 });
  });

  it.each([
    { raw: { name: 'fedavg', fraction: 0 }, path: 'strategy.fraction', message: /expected a number in \(0, 1\], got 0/ },
    { raw: { name: 'fedavg', fraction: 1.5 }, path: 'strategy.fraction', message: /got 1.5/ },
    { raw: { name: 'fedavg', fraction: 'half' }, path: 'strategy.fraction', message: /"half"/ },
    { raw: { name: 'fedavg', momentum: 0.9 }, path: 'strategy.momentum', message: /unknown option momentum of strategy fedavg/ },
    { raw: { name: 'bulyan' }, path: 'strategy.name', message: /unknown strategy "bulyan"; known strategies: fedavg, fedprox, fedavgm, fedadagrad, fedadam, fedyogi, fedmedian, fedtrimmedavg, krum/ },
    { raw: {}, path: 'strategy.name', message: /known strategies: fedavg/ },
    { raw: { name: 'fedprox' }, path: 'strategy.proximalMu', message: /expected number/ },
    { raw: { name: 'fedprox', proximalMu: -0.1 }, path: 'strategy.proximalMu', message: /got -0.1/ },
    { raw: { name: 'fedadam', beta1: 1 }, path: 'strategy.beta1', message: /got 1/ },
    { raw: { name: 'fedadam', tau: 0 }, path: 'strategy.tau', message: /got 0/ },
    { raw: { name: 'fedyogi', eta: -1 }, path: 'strategy.eta', message: /got -1/ },
    { raw: { name: 'fedadagrad', beta1: 0.9 }, path: 'strategy.beta1', message: /unknown option beta1 of strategy fedadagrad/ },
    { raw: { name: 'fedavgm', serverMomentum: 1 }, path: 'strategy.serverMomentum', message: /got 1/ },
    // Numbers JSON cannot write (a YAML .nan / .inf, a computed value) are named as they are, not as JSON's null.
    { raw: { name: 'krum', memoryBudgetBytes: Number.NaN }, path: 'strategy.memoryBudgetBytes', message: /got NaN$/ },
    { raw: { name: 'fedmedian', memoryBudgetBytes: Infinity }, path: 'strategy.memoryBudgetBytes', message: /got Infinity$/ },
    { raw: { name: 'fedtrimmedavg', beta: Number.NaN }, path: 'strategy.beta', message: /got NaN$/ },
    { raw: { name: 'fedprox', proximalMu: -Infinity }, path: 'strategy.proximalMu', message: /got -Infinity$/ },
  ])('rejects $raw with a ConfigError at $path', ({ raw, path, message }) => {
    const e = configError(() => parseStrategySection(raw));
    expect(e.path).toBe(path);
    expect(e.code).toBe('CONFIG_INVALID');
    expect(e.message).toMatch(message);
  });

  it('strategyFor builds the named strategy with its options; a bad option fails there, naming the field', () => {
    const s = strategyFor(manifest({ name: 'fedavg', fraction: 0.3 }));
    expect(s).toBeInstanceOf(FedAvg);
    const nodes = Array.from({ length: 10 }, (_, i) => `node-${i + 1}`);
    expect(s.configureRound({ round: 1, baseVersion: 0, knownNodes: nodes }).selectedNodes).toHaveLength(3);
    expect(configError(() => strategyFor(manifest({ name: 'fedavg', fraction: 2 }))).path).toBe('strategy.fraction');
  });

  it('the round config reaches the wire as the same strings, in the same order, as before it was typed', () => {
    const m = manifest({ name: 'fedavg' });
    const plan = strategyFor(m).configureRound({ round: 1, baseVersion: 0, knownNodes: [] });
    expect(plan.config).toEqual({ epochs: 2, batchSize: 16, learningRate: 0.05, optimizer: 'adam' });
    const legacy = { epochs: String(m.training.epochs), batchSize: String(m.training.batchSize), learningRate: String(m.training.learningRate), optimizer: m.training.optimizer };
    const wire = encodeRoundConfig(plan.config);
    expect(Object.entries(wire)).toEqual(Object.entries(legacy));
    const control = (config: Record<string, string>) => codec().encode('RoundControl', {
      tenant: 't', pipeline: 'p', round: 1, baseVersion: 0, kind: 'START', config, selectedNodes: [], deadline: 1, minUpdates: 2, targetUpdates: 3, createdAt: 1,
    });
    expect(control(wire).equals(control(legacy))).toBe(true);
  });
});
