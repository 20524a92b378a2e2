// `npm run fuzz`: the property-based fuzzers (test/unit/fuzz-*.test.ts) with many more cases than CI and a fresh
// seed, printed first so that a failure can be replayed. Environment: FEDSTREAM_FUZZ_RUNS (multiplier of every
// fuzzer's CI case count, default 20), FEDSTREAM_FUZZ_SEED (default: random). Extra arguments go to vitest.
import { spawnSync } from 'node:child_process';
import { randomInt } from 'node:crypto';

const runs = process.env.FEDSTREAM_FUZZ_RUNS ?? '20';
const seed = process.env.FEDSTREAM_FUZZ_SEED ?? String(randomInt(2 ** 31 - 1));
console.log(`fuzz: FEDSTREAM_FUZZ_RUNS=${runs} FEDSTREAM_FUZZ_SEED=${seed} (set both to replay this run)`);
const vitest = spawnSync('npx', ['vitest', 'run', '--project', 'unit', 'test/unit/fuzz-', ...process.argv.slice(2)], {
  stdio: 'inherit',
  env: { ...process.env, FEDSTREAM_FUZZ_RUNS: runs, FEDSTREAM_FUZZ_SEED: seed },
});
console.log(`fuzz: seed ${seed}`);
process.exit(vitest.status ?? 1);
