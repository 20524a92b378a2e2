/**
 * Summarises a V8 CPU profile (`node --cpu-prof`): self time by function and by package/area, so that a claim
 * such as "the sink spends X % in kafkajs" can be checked. Used for docs/performance.md.
 *
 *   npx tsx bench/profile-summary.ts <file.cpuprofile> [top=25]
 */
import { readFileSync } from 'node:fs';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
}

/** The area a script belongs to: a package under node_modules, a folder of src/, node's internals, or V8. */
export function areaOf(url: string, fn: string): string {
  if (!url) return fn.startsWith('(') ? fn : '(native)';
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return nm[1]!;
  const src = /\/(src\/[^/]+|bench)\//.exec(url);
  if (src) return src[1]!;
  if (url.startsWith('node:')) return 'node:internals';
  return url.split('/').slice(-2).join('/');
}

export function summarize(p: Profile, top = 25): { totalMs: number; byArea: [string, number][]; byFunction: [string, number][] } {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  p.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i] ?? 0)));
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const areas = new Map<string, number>();
  const fns = new Map<string, number>();
  for (const [id, us] of self) {
    const n = byId.get(id)!;
    const { functionName, url, lineNumber } = n.callFrame;
    const area = areaOf(url, functionName);
    areas.set(area, (areas.get(area) ?? 0) + us);
    const key = `${functionName || '(anonymous)'} ${url ? `${url.split('/').slice(-2).join('/')}:${lineNumber + 1}` : ''}`.trim();
    fns.set(key, (fns.get(key) ?? 0) + us);
  }
  const sort = (m: Map<string, number>) => [...m].sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, v / 1000] as [string, number]);
  return { totalMs: total / 1000, byArea: sort(areas), byFunction: sort(fns).slice(0, top) };
}

if (process.argv[1]?.endsWith('profile-summary.ts')) {
  const file = process.argv[2];
  if (!file) throw new Error('usage: npx tsx bench/profile-summary.ts <file.cpuprofile> [top]');
  const s = summarize(JSON.parse(readFileSync(file, 'utf8')) as Profile, Number(process.argv[3] ?? 25));
  const pct = (ms: number) => `${((100 * ms) / s.totalMs).toFixed(1).padStart(5)} %`;
  process.stdout.write(`total sampled ${s.totalMs.toFixed(0)} ms\n\nby area:\n`);
  for (const [k, ms] of s.byArea.slice(0, 20)) process.stdout.write(`  ${pct(ms)}  ${ms.toFixed(0).padStart(7)} ms  ${k}\n`);
  process.stdout.write('\nby function (self):\n');
  for (const [k, ms] of s.byFunction) process.stdout.write(`  ${pct(ms)}  ${ms.toFixed(0).padStart(7)} ms  ${k}\n`);
}
