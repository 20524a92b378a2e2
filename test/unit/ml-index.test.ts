import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

/**
 * The aggregator and `fedstream/node` import ml/index.ts and must not drag TensorFlow.js in with it. Checked in a
 * fresh Node process (vitest's own has tfjs loaded by other files): after the import, tfjs-core's global engine
 * (`globalThis._tfengine`, made when tfjs-core loads) must not exist and no @tensorflow module may be in the
 * CommonJS cache. The same probe after `loadTfRuntime()` must see both, so that the probe is known to work.
 */
function probe(modules: string[], loadTf: boolean): { engine: boolean; tensorflowModules: number } {
  const code = `
    const { createRequire } = await import('node:module');
    for (const m of ${JSON.stringify(modules)}) await import(m);
    if (${loadTf}) await (await import('./src/ml/index.ts')).loadTfRuntime();
    const cache = createRequire(process.cwd() + '/').cache;
    console.log(JSON.stringify({
      engine: globalThis._tfengine !== undefined,
      tensorflowModules: Object.keys(cache).filter((k) => k.includes('@tensorflow')).length,
    }));`;
  const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { cwd: process.cwd(), encoding: 'utf8' });
  return JSON.parse(out.trim().split('\n').at(-1)!) as { engine: boolean; tensorflowModules: number };
}

describe('ml/index.ts', () => {
  it('loads no TensorFlow.js when imported, nor does fedstream/node (src/node/index.ts)', () => {
    expect(probe(['./src/ml/index.ts', './src/node/index.ts'], false)).toEqual({ engine: false, tensorflowModules: 0 });
  }, 60_000);

  it('loads it through loadTfRuntime()', () => {
    const loaded = probe(['./src/ml/index.ts'], true);
    expect(loaded.engine).toBe(true);
    expect(loaded.tensorflowModules).toBeGreaterThan(0);
  }, 60_000);
});
