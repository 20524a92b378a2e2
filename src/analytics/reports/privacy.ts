/**
 * What both reports show of differential privacy (query `privacy`, schemas/clickhouse/queries/privacy.sql): the
 * guarantee of the latest version, as one line for a report's header, and a table of ε per version for the
 * compliance report. docs/strategies.md, "Differential privacy", says what ε means here.
 */
import type { Manifest } from '../../config/index.ts';
import type { Block } from './document.ts';
import { fixed, num, str, type Row } from './format.ts';

const eps = (r: Row): string => (Number(r.dp_epsilon) === Infinity ? '∞ (no noise)' : fixed(r.dp_epsilon, 3));

/** The rows of versions published with central DP. */
export function dpRows(rows: Row[]): Row[] {
  return rows.filter((r) => String(r.dp_mechanism ?? '') !== '');
}

/**
 * One line for a report's header: the manifest's privacy settings and the latest version's ε, e.g.
 * `central DP (fixed clipping, z 1.0, C 1.0, 10 sampled of 100): ε = 2.31 at δ = 1e-5 after 12 versions, budget ε 8`.
 * Undefined when the manifest has no `privacy` section.
 */
export function privacyLine(m: Pick<Manifest, 'privacy'>, rows: Row[]): string | undefined {
  const p = m.privacy;
  if (!p) return undefined;
  const parts: string[] = [];
  if (p.central) {
    const c = p.central;
    const of = p.population ? ` of ${p.population}` : '';
    const last = dpRows(rows).at(-1);
    const now = last ? `ε = ${eps(last)} at δ = ${str(last.dp_delta)} after ${str(last.dp_steps)} noised version${num(last.dp_steps) === 1 ? '' : 's'}` : 'no noised version yet';
    parts.push(`central DP (${c.clipping} clipping, noise multiplier ${c.noiseMultiplier}, clipping norm ${c.clippingNorm ?? 0.1}${c.clipping === 'adaptive' ? ' initially' : ''}, ${c.numSampledClients} sampled${of}): ${now}${p.budget ? `; budget ε ${p.budget.epsilon} at δ ${p.budget.delta}` : ''}`);
  }
  if (p.local) parts.push(`local DP on each node (clipping norm ${p.local.clippingNorm}, ε ${p.local.epsilon}, δ ${p.local.delta} per update)`);
  return parts.join('; ');
}

/** The compliance report's table: ε per version (only versions published with central DP). */
export function privacyBlocks(m: Pick<Manifest, 'privacy'>, rows: Row[]): Block[] {
  const line = privacyLine(m, rows);
  const dp = dpRows(rows);
  return [
    { kind: 'paragraph', text: line ? `Privacy: ${line}. ε is node-level (one node's whole contribution), cumulative over the versions so far, from the RDP accountant of the sampled Gaussian mechanism; central DP trusts the aggregator. Query: \`privacy\`.` : 'This pipeline runs without differential privacy (no `privacy` section in its manifest).' },
    {
      kind: 'table',
      headers: ['version', 'round', 'strategy', 'mechanism', 'ε', 'δ', 'noise multiplier', 'sampling rate', 'noised versions', 'clipping norm'],
      align: ['r', 'r', 'l', 'l', 'r', 'r', 'r', 'r', 'r', 'r'],
      rows: dp.map((r) => [str(r.version), str(r.round), str(r.strategy), str(r.dp_mechanism), eps(r), str(r.dp_delta), str(r.dp_noise_multiplier), str(r.dp_sampling_rate), str(r.dp_steps), r.clipping_norm === null || r.clipping_norm === undefined ? '—' : fixed(r.clipping_norm, 4)]),
      empty: 'No version was published with central DP.',
    },
  ];
}
