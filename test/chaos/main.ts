/**
 * `npm run chaos [-- --seed <n>] [--faults <n>] [--keep]`: the chaos run (run.ts). Prints one line per fault, then
 * the checks and `N faults injected: versions equal, 0 lost, 0 counted twice`; exits 1 with the differences when a
 * check fails. The seed replays the schedule (`--seed`); default: a random one, printed first.
 */
import { randomInt } from 'node:crypto';
import { parseArgs } from 'node:util';
import { runChaos } from './run.ts';

const { values } = parseArgs({
  options: { seed: { type: 'string' }, faults: { type: 'string', default: '50' }, keep: { type: 'boolean', default: false } },
});
const seed = values.seed === undefined ? randomInt(1, 2 ** 31 - 1) : Number(values.seed);
const faults = Number(values.faults);
if (!Number.isSafeInteger(seed) || seed < 0) throw new Error(`--seed: expected a non-negative integer, got ${values.seed}`);
if (!Number.isSafeInteger(faults) || faults < 1) throw new Error(`--faults: expected a positive integer, got ${values.faults}`);

// Ctrl-C or a kill: exit through the 'exit' handlers, which stop this run's processes and broker (processes.ts).
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => process.exit(130));

const t0 = Date.now();
const stamp = () => `[${((Date.now() - t0) / 1000).toFixed(0).padStart(4)} s]`;
process.stdout.write(`chaos run: seed ${seed}, ${faults} faults (replay: npm run chaos -- --seed ${seed} --faults ${faults})\n`);
try {
  const r = await runChaos({ seed, faults, keep: values.keep, say: (line) => process.stdout.write(`${stamp()} ${line}\n`) });
  const v = r.verdict;
  process.stdout.write(`final version weights sha256 ${v.finalSha}\nuninterrupted run's        ${v.referenceSha}\n`);
  process.stdout.write(`ClickHouse rows (FINAL) against the Kafka log: ${Object.entries(v.tables).map(([t, c]) => `${t} ${c.got}/${c.expected}`).join(', ')}\n`);
  for (const p of v.problems) process.stdout.write(`  DIFF ${p}\n`);
  process.stdout.write(`${r.summary}\nseed ${seed}, ${r.rounds} rounds, ${(r.wallMs / 1000).toFixed(0)} s${r.ok && !values.keep ? '' : `; logs and data in ${r.workDir}`}\n`);
  process.exitCode = r.ok ? 0 : 1;
} catch (err) {
  process.stdout.write(`chaos run failed (seed ${seed}): ${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
}
