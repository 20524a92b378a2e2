/**
 * The table of docs/performance.md, rendered from a results object (bench/results/latest.json): the text between
 * the markers `<!-- bench:table:begin -->` and `<!-- bench:table:end -->` is replaced; the prose around it is
 * written by people.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from './lib.ts';

const BEGIN = '<!-- bench:table:begin -->';
const END = '<!-- bench:table:end -->';

type Obj = Record<string, unknown>;

function get(o: Obj, dotted: string): unknown {
  let cur: unknown = o;
  for (const k of dotted.split('.')) cur = cur && typeof cur === 'object' ? (cur as Obj)[k] : undefined;
  return cur;
}

function num(o: Obj, key: string): number | undefined {
  const v = get(o, key);
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

function fmt(v: number | undefined, digits = 2): string {
  if (v === undefined) return 'n/a';
  if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString('en-US');
  return v.toFixed(digits);
}

function verdict(ok: boolean | undefined): string {
  return ok === undefined ? '' : ok ? 'met' : '**missed**';
}

export function renderTable(r: Obj): string {
  const m = (r.machine ?? {}) as Obj;
  const rows: string[][] = [];
  const add = (figure: string, value: string, goal: string, ok: boolean | undefined) => rows.push([figure, value, goal, verdict(ok)]);
  for (const [key, label] of [['aggregate', 'P = 4M'], ['aggregate200k', 'P = 200k']] as const) {
    const a = (r[key] ?? {}) as Obj;
    const n = num(a, 'n');
    const big = key === 'aggregate';
    const memcpy = num(a, 'memcpyGbps');
    const traffic = num(a, 'trafficGbps');
    const upd = num(a, 'updateGbps');
    const flIn = num(a, 'flowerInplaceGbps');
    const npFold = num(a, 'numpyInplaceFoldGbps');
    add(`\`${key}.updateGbps\` (${label}, N = ${n ?? '?'}, decode excluded: updates in the kernel's slots, where the aggregator decodes them)`, `${fmt(upd)} GB/s`, big && flIn ? `≥ 1.5 × Flower in-place = ${fmt(1.5 * flIn)}` : '—', big && upd !== undefined && flIn !== undefined ? upd >= 1.5 * flIn : undefined);
    add(`\`${key}.trafficGbps\` (${label}, every byte the kernel reads and writes: each update once, the accumulator once per pass)`, `${fmt(traffic)} GB/s`, big && memcpy ? `≥ 0.7 × bulk copy = ${fmt(0.7 * memcpy)}` : '—', big && traffic !== undefined && memcpy !== undefined ? traffic >= 0.7 * memcpy : undefined);
    add(`\`${key}.updateGbpsFromArrays\` (${label}, updates handed over as Float32Arrays: staged copies)`, `${fmt(num(a, 'updateGbpsFromArrays'))} GB/s, every load and store ${fmt(num(a, 'kernelTrafficGbpsFromArrays'))} GB/s`, 'reported', undefined);
    add(`\`${key}.beginMs\` (${label}, one round's WeightedMean: kernel instance, accumulator, slots)`, `${fmt(num(a, 'beginMs'), 2)} ms`, 'reported', undefined);
    add(`\`${key}.updateGbpsWithDecode\` (${label}, as the aggregator: Avro decode with tensor views + unpack into a slot + fold)`, `${fmt(num(a, 'updateGbpsWithDecode'))} GB/s`, 'reported', undefined);
    add(`\`${key}.decodeGbps\` / \`decodeCopyingGbps\` (${label}, decode alone: views + one copy into a slot / avsc's copy + new arrays)`, `${fmt(num(a, 'decodeGbps'))} / ${fmt(num(a, 'decodeCopyingGbps'))} GB/s`, 'reported', undefined);
    add(`\`${key}.updateGbpsDecodeFromBytes\` (${label}, alternative: fold the tensor views, staged)`, `${fmt(num(a, 'updateGbpsDecodeFromBytes'))} GB/s`, 'reported', undefined);
    add(`\`${key}.memcpyGbps\` (${label}, TypedArray.set, read + write)`, `${fmt(memcpy)} GB/s`, 'reference', undefined);
    add(`\`${key}.flowerInplaceGbps\` (${label}, flwr aggregate_inplace incl. its np.load)`, `${fmt(flIn)} GB/s`, 'reference', undefined);
    add(`\`${key}.flowerGbps\` (${label}, flwr aggregate)`, `${fmt(num(a, 'flowerGbps'))} GB/s`, 'reference', undefined);
    add(`\`${key}.numpyInplaceFoldGbps\` (${label}, aggregate_inplace's arithmetic on decoded arrays)`, `${fmt(npFold)} GB/s`, big && npFold ? `1.5 × = ${fmt(1.5 * npFold)}` : 'reference', big && upd !== undefined && npFold !== undefined ? upd >= 1.5 * npFold : undefined);
    add(`\`${key}.scalarGbps\` (${label}, the scalar loop before this work)`, `${fmt(num(a, 'scalarGbps'))} GB/s`, 'reference', undefined);
  }
  const d = (r.decision ?? {}) as Obj;
  const p99 = num(d, 'p99Ms');
  add(`\`decision.p50Ms\` (${num(d, 'nodes') ?? '?'} nodes, ${num(d, 'params') ?? '?'} params, ${num(d, 'rounds') ?? '?'} rounds)`, `${fmt(num(d, 'p50Ms'), 1)} ms`, '—', undefined);
  add('`decision.p99Ms`', `${fmt(p99, 1)} ms`, '< 10 ms', p99 === undefined ? undefined : p99 < 10);
  add('`decision.fromSendP50Ms` / `fromSendP99Ms` (from the last send() call: upper bound)', `${fmt(num(d, 'fromSendP50Ms'), 1)} / ${fmt(num(d, 'fromSendP99Ms'), 1)} ms`, 'reported', undefined);
  add(`\`decision.burstP50Ms\` (all ${num(d, 'nodes') ?? '?'} updates at once, ${num(d, 'burstRounds') ?? '?'} rounds)`, `${fmt(num(d, 'burstP50Ms'), 1)} ms`, 'reported', undefined);
  const i = (r.ingest ?? {}) as Obj;
  const eps = num(i, 'eventsPerSec');
  add(`\`ingest.eventsPerSec\` (sustained, ${num(i, 'seconds') ?? '?'} s at ${fmt(num(i, 'offeredPerSec'), 0)}/s offered)`, `${fmt(eps, 0)}/s`, '≥ 10,000/s (aim 100,000/s)', eps === undefined ? undefined : eps >= 10_000);
  add('`ingest.maxEventsPerSec` (producers flat out)', `${fmt(num(i, 'maxEventsPerSec'), 0)}/s`, 'reported', undefined);
  add('`ingest.drainEventsPerSec` (sink draining a backlog, producers stopped)', `${fmt(num(i, 'drainEventsPerSec'), 0)}/s`, 'reported', undefined);
  add('`ingest.engineOnlyRowsPerSec` (ClickHouse alone, 10,000-row inserts)', `${fmt(num(i, 'engineOnlyRowsPerSec'), 0)}/s`, 'reference', undefined);
  add('`ingest.lagAtEnd` (records behind the sink when the window closed)', fmt(num(i, 'lagAtEnd'), 0), 'bounded', undefined);
  add('CPU cores used: sink process / producers / broker', `${fmt(num(i, 'cpuSinkProcess'))} / ${fmt(num(i, 'cpuProducerProcess'))} / ${fmt(num(i, 'cpuBroker'))}`, 'reported', undefined);
  add('`ingest.freshnessP50Ms` / `freshnessP99Ms`', `${fmt(num(i, 'freshnessP50Ms'), 0)} / ${fmt(num(i, 'freshnessP99Ms'), 0)} ms`, 'reported (sink batches ≤ 1 s)', undefined);
  add('of which the producer (event time → acknowledged), p50 / p99', `${fmt(num(i, 'producerAckP50Ms'), 0)} / ${fmt(num(i, 'producerAckP99Ms'), 0)} ms`, 'reported', undefined);
  const p = (r.producer ?? {}) as Obj;
  const ratio = num(p, 'ratioToJava');
  add(`\`producer.ratioToJava\` (${num(p, 'recordSize') ?? '?'} B records, acks=all, 500 records per send)`, `${fmt(ratio, 3)} (${fmt(num(p, 'oursPerSec'), 0)} vs ${fmt(num(p, 'javaPerSec'), 0)} records/s)`, 'reported', undefined);
  const byBatch = (get(p, 'oursByBatch') ?? {}) as Record<string, number>;
  if (Object.keys(byBatch).length) add('ours by records per send (1 / 100 / 2000)', `${fmt(byBatch.b1, 0)} / ${fmt(byBatch.b100, 0)} / ${fmt(byBatch.b2000, 0)} records/s`, 'reported', undefined);
  const s = (r.scale ?? {}) as Obj;
  add(`\`scale.rssMb100\` / \`scale.rssMb1000\` (${num(s, 'params') ?? '?'} params)`, `${fmt(num(s, 'rssMb100'), 0)} / ${fmt(num(s, 'rssMb1000'), 0)} MiB`, 'O(parameters): flat in nodes', num(s, 'rssMb1000') !== undefined && num(s, 'rssMb100') !== undefined ? num(s, 'rssMb1000')! < 1.5 * num(s, 'rssMb100')! : undefined);
  add('1,000-node round completes', num(s, 'participants1000') !== undefined ? `${num(s, 'participants1000')} updates in ${fmt(num(s, 'roundSeconds1000'), 1)} s` : 'n/a', 'completes', num(s, 'participants1000') === undefined ? undefined : num(s, 'participants1000') === 1000);

  const head = `Measured ${String(r.startedAt ?? '')} with \`${String(r.command ?? 'npm run bench')}\` (${String(r.durationSeconds ?? '?')} s) on ${String(m.cpuModel ?? '?')}, ${String(m.cores ?? '?')} cores, ${String(m.memoryGb ?? '?')} GiB, Node ${String(m.node ?? '?')}; 1-minute load average ${String(m.loadAvgStart ?? '?')} at the start, ${String(m.loadAvgEnd ?? '?')} at the end. Raw figures: \`bench/results/latest.json\`.`;
  const errors = Object.keys((r.errors ?? {}) as Obj);
  const lines = [
    head,
    '',
    '| figure | measured | goal / role | verdict |',
    '|---|---|---|---|',
    ...rows.map((row) => `| ${row.join(' | ')} |`),
  ];
  if (errors.length) lines.push('', `Sections that failed in this run: ${errors.join(', ')} (see \`errors\` in the JSON).`);
  return lines.join('\n');
}

/** Replaces the table in docs/performance.md (the file must exist with the markers). */
export function renderDocs(r: Obj, file = path.join(ROOT, 'docs', 'performance.md')): void {
  if (!existsSync(file)) throw new Error(`${file} is missing`);
  const text = readFileSync(file, 'utf8');
  const a = text.indexOf(BEGIN);
  const b = text.indexOf(END);
  if (a < 0 || b < a) throw new Error(`${file} has no ${BEGIN} … ${END} section`);
  writeFileSync(file, `${text.slice(0, a + BEGIN.length)}\n${renderTable(r)}\n${text.slice(b)}`);
}

// `tsx bench/report.ts [results.json]` re-renders the table from a results file.
if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(ROOT, 'bench', 'report.ts')) {
  const src = process.argv[2] ?? path.join(ROOT, 'bench', 'results', 'latest.json');
  renderDocs(JSON.parse(readFileSync(src, 'utf8')) as Obj);
  process.stdout.write(`rendered ${src} into docs/performance.md\n`);
}
