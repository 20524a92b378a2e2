/** docs/adversarial.md lists the adversarial suite's attacks as test/adversarial/attacks.ts defines them, row for row. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ATTACKS } from '../adversarial/attacks.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const cell = (s: string) => s.replace(/\|/g, '\\|');

describe('docs/adversarial.md', () => {
  it('has one table row per attack, in order, with what it sends and what must happen', () => {
    const rows = readFileSync(path.join(ROOT, 'docs/adversarial.md'), 'utf8').split('\n').filter((l) => /^\| \d+ \|/.test(l));
    expect(rows).toEqual(ATTACKS.map((a, i) => `| ${i + 1} | ${cell(a.name)} | ${a.topic} | ${a.wave} | ${cell(a.sends)} | ${cell(a.expected)} |`));
  });

  it('has at least 30 kinds, with unique names', () => {
    expect(ATTACKS.length).toBeGreaterThanOrEqual(30);
    expect(new Set(ATTACKS.map((a) => a.name)).size).toBe(ATTACKS.length);
  });
});
