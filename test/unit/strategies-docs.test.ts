/** docs/strategies.md against the code: every strategy and option documented, with the schema's default; every shipped pipeline's strategy valid. */
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { STRATEGY_NAMES, parseStrategySection, strategyFor } from '../../src/aggregator/index.ts';
import { loadManifest } from '../../src/config/manifest.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const doc = readFileSync(path.join(ROOT, 'docs', 'strategies.md'), 'utf8');

/** Rows of the options table: strategy (or `every strategy`), option, default cell. */
function optionRows(): Array<{ strategy: string; option: string; default: string }> {
  const start = doc.indexOf('| strategy | option | meaning | unit | range | default |');
  expect(start).toBeGreaterThan(0);
  const rows = doc.slice(start).split('\n').slice(2);
  const out = [];
  for (const row of rows) {
    if (!row.startsWith('|')) break;
    const cells = row.split('|').slice(1, -1).map((c) => c.trim());
    out.push({ strategy: cells[0]!.replace(/`/g, ''), option: cells[1]!.replace(/`/g, ''), default: cells[5]! });
  }
  return out;
}

describe('docs/strategies.md', () => {
  it('documents every registered strategy and every one of its options, with the default its schema fills in', () => {
    const rows = optionRows();
    const documented = new Set<string>();
    for (const name of STRATEGY_NAMES) {
      expect(doc, `docs/strategies.md lacks a row for ${name}`).toContain(`| \`${name}\` | `);
      // FedProx's μ is required: give it, and expect the doc to say so.
      const parsed = parseStrategySection(name === 'fedprox' ? { name, proximalMu: 0.5 } : { name }) as Record<string, unknown>;
      for (const [option, value] of Object.entries(parsed)) {
        if (option === 'name') continue;
        const row = rows.find((r) => r.option === option && (r.strategy === name || r.strategy === 'every strategy'));
        expect(row, `no row for ${name}.${option}`).toBeDefined();
        documented.add(`${row!.strategy}.${option}`);
        if (name === 'fedprox' && option === 'proximalMu') expect(row!.default).toMatch(/^required/);
        else expect(Number(/^`([^`]+)`$/.exec(row!.default)?.[1]), `${name}.${option}`).toBe(value);
      }
    }
    // And nothing documented that the code does not take.
    expect(rows.map((r) => `${r.strategy}.${r.option}`).sort()).toEqual([...documented].sort());
  });

  it('every pipeline shipped in pipelines/ names a strategy whose options are valid', () => {
    const dir = path.join(ROOT, 'pipelines');
    const names = readdirSync(dir).filter((f) => f.endsWith('.yaml')).map((f) => strategyFor(loadManifest(path.join(dir, f))).name);
    expect(names).toContain('fedadam');
  });
});
