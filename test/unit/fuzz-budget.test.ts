// The fuzzers' promise to CI (docs/fuzzing.md): at least 10,000 cases per run, and the table in the docs says how
// many each file runs. Counted from the sources, since each fuzzer file runs in its own worker.
import { readFileSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { RECORD_KINDS } from '../../src/codec/index.ts';

const dir = new URL('./', import.meta.url);

/** CI cases per fuzzer file: the base counts given to fuzzParams (a `${kind}` one runs once per record kind). */
function casesByFile(): Map<string, number> {
  const out = new Map<string, number>();
  for (const file of readdirSync(dir).filter((f) => /^fuzz-.*\.test\.ts$/.test(f))) {
    const text = readFileSync(new URL(file, dir), 'utf8');
    let n = 0;
    for (const m of text.matchAll(/fuzzParams\((['`])([^'`]+)\1, (\d+)\)/g)) n += Number(m[3]) * ((m[2] as string).includes('${kind}') ? RECORD_KINDS.length : 1);
    if (n > 0) out.set(file, n);
  }
  return out;
}

describe('the fuzzers\' CI budget', () => {
  it('runs at least 10,000 cases, as many per file as docs/fuzzing.md says', () => {
    const cases = casesByFile();
    expect([...cases.keys()].sort()).toEqual(['fuzz-chunks.test.ts', 'fuzz-codec.test.ts', 'fuzz-manifest.test.ts', 'fuzz-rows.test.ts', 'fuzz-wire.test.ts']);
    const total = [...cases.values()].reduce((a, b) => a + b, 0);
    expect(total).toBeGreaterThanOrEqual(10_000);
    const docs = readFileSync(new URL('../../docs/fuzzing.md', import.meta.url), 'utf8');
    for (const [file, n] of cases) expect(docs, file).toMatch(new RegExp(`\\| \`${file.replace('.', '\\.')}\` \\|.*\\| ${n.toLocaleString('en-US')} \\|`));
    expect(docs).toContain(`${total.toLocaleString('en-US')} cases in CI`);
  });
});
