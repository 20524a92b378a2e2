/**
 * `fedstream experiment robustness` on a tiny configuration (4 nodes, 1 Byzantine, 2 rounds), through the CLI: the
 * whole pipeline in-process (aggregator, node runtimes, signatures, validation), the Byzantine node's update
 * corrupted on the node before signing. And the attacks' formulas (node/byzantine.ts) on known values.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { buildProgram } from '../../src/cli/program.ts';
import type { RobustnessResult } from '../../src/demo/experiment-robustness.ts';
import { ConfigError } from '../../src/common/index.ts';
import { ATTACK_TITLES, ROBUSTNESS_BEGIN, ROBUSTNESS_END, parseRobustnessResult, replaceSection, robustnessChart, robustnessTable } from '../../src/demo/robustness-report.ts';
import { ATTACKS } from '../../src/node/index.ts';
import { corrupt } from '../../src/node/byzantine.ts';

const dir = mkdtempSync(join(tmpdir(), 'fedstream-robustness-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the attacks of a Byzantine node', () => {
  const base = [{ name: 'w', shape: [3], values: Float32Array.from([1, 2, 3]) }];
  const trained = [{ name: 'w', shape: [3], values: Float32Array.from([1.5, 2, 2]) }];
  it('sign flip ×10 reverses and boosts the change; scaling ×100 boosts it; noise is seeded', () => {
    expect([...corrupt('sign-flip', base, trained, 1)[0]!.values]).toEqual([-4, 2, 13]);
    expect([...corrupt('scaling', base, trained, 1)[0]!.values]).toEqual([51, 2, -97]);
    const a = corrupt('noise', base, trained, 7)[0]!.values;
    expect([...a]).toEqual([...corrupt('noise', base, trained, 7)[0]!.values]);
    expect([...a]).not.toEqual([...corrupt('noise', base, trained, 8)[0]!.values]);
    expect([...a].some((v, i) => v !== trained[0]!.values[i])).toBe(true);
  });
});

/** Runs the CLI with `args`: its exit code and what it wrote on stderr (stdout swallowed). */
async function cli(args: string[]): Promise<{ code: number; stderr: string }> {
  const program = buildProgram().exitOverride();
  let stderr = '';
  const write = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((s) => {
    stderr += String(s);
    return true;
  });
  try {
    await program.parseAsync(['node', 'fedstream', 'experiment', 'robustness', ...args]);
    return { code: Number(process.exitCode ?? 0), stderr };
  } finally {
    process.exitCode = undefined;
    write.mockRestore();
    err.mockRestore();
  }
}

const TINY = ['--nodes', '4', '--byzantine', '1', '--attacks', 'sign-flip', '--strategies', 'fedavg,fedmedian', '--rounds', '2', '--train-examples', '1200', '--test-examples', '300'];

describe('fedstream experiment robustness', () => {
  it('4 nodes, 1 sign-flipping, 2 rounds: FedAvg and median through the real pipeline; JSON, table, chart and the document section', async () => {
    const doc = join(dir, 'strategies.md');
    writeFileSync(doc, '# Strategies\n\ntext before\n');
    const out = join(dir, 'run');
    expect((await cli([...TINY, '--workers', '1', '--out', out, '--doc', doc])).code).toBe(0);
    const result = JSON.parse(readFileSync(join(out, 'robustness.json'), 'utf8')) as RobustnessResult;
    expect(result.runs.map((r) => [r.strategy, r.byzantine, r.attack])).toEqual([['fedavg', 1, 'sign-flip'], ['fedmedian', 1, 'sign-flip']]);
    for (const r of result.runs) {
      // Every update, the Byzantine one too, went through validation and was accepted: 4 nodes × 2 rounds.
      expect(r.accepted + r.rejected).toBe(8);
      expect(r.accuracy).toBeGreaterThanOrEqual(0);
      expect(r.accuracy).toBeLessThanOrEqual(1);
      expect(r.msPerRound).toBeGreaterThan(0);
    }
    const [avg, median] = result.runs;
    // One reversed, ×10 step of four outweighs the three honest ones in the mean, not in the median.
    expect(median!.accuracy).toBeGreaterThan(avg!.accuracy);
    const md = readFileSync(doc, 'utf8');
    expect(md.startsWith('# Strategies\n\ntext before\n')).toBe(true);
    expect(md).toContain(ROBUSTNESS_BEGIN);
    expect(md).toMatch(/\| fedmedian \| 0\.\d{3}/);
    expect(readFileSync(join(dir, 'robustness.svg'), 'utf8')).toContain('<svg');
    // Run again: the section is replaced, not appended twice.
    expect(replaceSection(md, `${ROBUSTNESS_BEGIN}\nnew\n${ROBUSTNESS_END}`).split(ROBUSTNESS_BEGIN)).toHaveLength(2);
    // The options as given, defaults and where the output went left out.
    expect(result.command).toBe('npx fedstream experiment robustness --rounds 2 --nodes 4 --byzantine 1 --attacks sign-flip --strategies fedavg,fedmedian --train-examples 1200 --test-examples 300 --workers 1');

    // The same seed gives the same accuracies, to the last bit, with two training workers instead of one (the
    // updates then reach the aggregator in another order): what lets the document's table be reproduced.
    const again = join(dir, 'again');
    await cli([...TINY, '--workers', '2', '--out', again]);
    const second = JSON.parse(readFileSync(join(again, 'robustness.json'), 'utf8')) as RobustnessResult;
    expect(second.runs.map((r) => [r.strategy, r.accuracy, r.loss])).toEqual(result.runs.map((r) => [r.strategy, r.accuracy, r.loss]));

    // --from-json re-renders the section from the saved result, without running: the same Markdown, the original command.
    const rendered = join(dir, 'rendered');
    await cli(['--from-json', join(out, 'robustness.json'), '--out', rendered]);
    expect(readFileSync(join(rendered, 'robustness.md'), 'utf8')).toBe(readFileSync(join(out, 'robustness.md'), 'utf8'));
    expect(readFileSync(join(rendered, 'robustness.svg'), 'utf8')).toBe(readFileSync(join(out, 'robustness.svg'), 'utf8'));
  }, 300_000);

  it('--from-json refuses a file that is not a robustness result, naming the field', async () => {
    const bad = join(dir, 'bad.json');
    const good = { experiment: 'robustness', createdAt: 'x', nodes: 10, rounds: 5, trainExamples: 9000, testExamples: 1000, model: { inputShape: [784], layers: [{ type: 'dense', units: 10, activation: 'softmax' }] }, training: { epochs: 1, batchSize: 20, learningRate: 0.1, optimizer: 'sgd' }, seed: 1, cores: 2, loadAverage: 1, workers: 2, durationMs: 1, runs: [{ strategy: 'fedavg', options: {}, byzantine: 0, attack: null, accuracy: 0.9, loss: 0.3, msPerRound: 5, rejected: 0, accepted: 50 }] };
    expect(parseRobustnessResult(JSON.stringify(good), 'good.json').runs).toHaveLength(1);
    writeFileSync(bad, JSON.stringify({ ...good, runs: [{ ...good.runs[0], accuracy: 1.5 }] }));
    const { code, stderr } = await cli(['--from-json', bad, '--out', join(dir, 'never')]);
    expect(code).toBe(2);
    expect(stderr).toMatch(/error \[CONFIG_INVALID\]: .*bad\.json: runs\.0\.accuracy: /);
    expect(existsSync(join(dir, 'never'))).toBe(false);
    const e = (() => {
      try {
        parseRobustnessResult(readFileSync(bad, 'utf8'), 'bad.json');
      } catch (x) {
        return x;
      }
    })();
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as ConfigError).path).toBe('runs.0.accuracy');
    expect(() => parseRobustnessResult('{', 'x.json')).toThrow(/x\.json: not JSON/);
  });
});

describe('the write-up of the full grid', () => {
  // The default grid's shape (4 attacks × 1..3 Byzantine nodes + the run without attack, 6 strategies), with made-up
  // accuracies: the layout under test, not the numbers.
  const strategies = ['fedavg', 'fedmedian', 'krum (f=3)', 'multi-krum (f=3, m=5)', 'clipped fedavg (C=1)', 'fedtrimmedavg (β=0.3)'];
  const settings = [{ byzantine: 0, attack: null }, ...[1, 2, 3].flatMap((f) => ATTACKS.map((attack) => ({ byzantine: f, attack })))];
  const runs = settings.flatMap((s, i) => strategies.map((strategy, k) => ({ strategy, options: {}, ...s, accuracy: (i * 6 + k) / 100, loss: 1, msPerRound: 100 + k, rejected: 0, accepted: 50 })));
  const result = { experiment: 'robustness', createdAt: 'x', nodes: 10, rounds: 5, trainExamples: 9000, testExamples: 1000, model: { inputShape: [784], layers: [] }, training: { epochs: 1, batchSize: 20, learningRate: 0.1, optimizer: 'sgd' }, seed: 1, cores: 2, loadAverage: 1, workers: 2, durationMs: 1, runs } as unknown as RobustnessResult;

  it('one table per attack, 4 accuracy columns each (not 13 in one), the run without attack in each; a time table', () => {
    const md = robustnessTable(result);
    for (const a of ATTACKS) expect(md).toContain(`**${ATTACK_TITLES[a]}**`);
    const headers = md.split('\n').filter((l) => l.startsWith('| strategy |'));
    expect(headers).toHaveLength(5);
    for (const h of headers.slice(0, 4)) expect(h).toBe('| strategy | f = 0 (no attack) | f = 1 | f = 2 | f = 3 |');
    expect(headers[4]).toBe('| strategy | ms per round (mean) | fastest run | slowest run |');
    // Label flip is the 4th attack: with f = 1, 2, 3 it is setting 4, 8, 12, so krum (k = 2) has (4·6 + 2)/100 and so on.
    const labelFlip = md.slice(md.indexOf(`**${ATTACK_TITLES['label-flip']}**`));
    expect(labelFlip).toContain('| krum (f=3) | 0.020 | 0.260 | 0.500 | 0.740 |');
  });

  it('the chart: one panel per attack, each a bar per strategy and Byzantine count, on one 0–1 scale', () => {
    const svg = robustnessChart(result);
    expect(svg.match(/<svg x="/g)).toHaveLength(4);
    expect(svg.match(/<rect [^>]*><title>/g)).toHaveLength(4 * 4 * strategies.length);
    for (const a of ATTACKS) expect(svg).toContain(`>${ATTACK_TITLES[a]}</text>`);
  });
});
