/**
 * `fedstream experiment robustness` on a tiny configuration (4 nodes, 1 Byzantine, 2 rounds), through the CLI: the
 * whole pipeline in-process (aggregator, node runtimes, signatures, validation), the Byzantine node's update
 * corrupted on the node before signing. And the attacks' formulas (node/byzantine.ts) on known values.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { buildProgram } from '../../src/cli/program.ts';
import type { RobustnessResult } from '../../src/demo/experiment-robustness.ts';
import { ROBUSTNESS_BEGIN, ROBUSTNESS_END, replaceSection } from '../../src/demo/robustness-report.ts';
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

describe('fedstream experiment robustness', () => {
  it('4 nodes, 1 sign-flipping, 2 rounds: FedAvg and median through the real pipeline; JSON, table, chart and the document section', async () => {
    const doc = join(dir, 'strategies.md');
    writeFileSync(doc, '# Strategies\n\ntext before\n');
    const out = join(dir, 'run');
    const program = buildProgram().exitOverride();
    const write = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      await program.parseAsync(['node', 'fedstream', 'experiment', 'robustness', '--nodes', '4', '--byzantine', '1', '--attacks', 'sign-flip', '--strategies', 'fedavg,fedmedian',
        '--rounds', '2', '--train-examples', '1200', '--test-examples', '300', '--workers', '1', '--out', out, '--doc', doc]);
    } finally {
      write.mockRestore();
      err.mockRestore();
    }
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
  }, 180_000);
});
