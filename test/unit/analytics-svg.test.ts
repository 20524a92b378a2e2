import { describe, expect, it } from 'vitest';
import { chartGrid } from '../../src/analytics/reports/svg-grid.ts';
import { barChart, escapeXml, formatTick, heatmap, lineChart, niceTicks, textWidth } from '../../src/analytics/reports/svg.ts';

/** Tags balance (every open tag closed, in order) and attributes are quoted: enough to catch broken markup. */
function wellFormed(svg: string): void {
  const stack: string[] = [];
  for (const m of svg.matchAll(/<(\/?)([a-zA-Z][\w-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>/g)) {
    const [, close, name, , self] = m;
    if (self) continue;
    if (close) expect(stack.pop(), `closing </${name}>`).toBe(name);
    else stack.push(name!);
  }
  expect(stack).toEqual([]);
  // No raw '<' or '&' outside tags and entities.
  const text = svg.replace(/<[^>]+>/g, '');
  expect(text).not.toMatch(/[<>]|&(?!amp;|lt;|gt;|quot;|#39;)/);
  expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
}

describe('escapeXml', () => {
  it('escapes the five XML specials', () => {
    expect(escapeXml(`<a href="x">Tom & 'Jerry'</a>`)).toBe('&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;');
  });
});

describe('niceTicks', () => {
  it('covers the range with steps of 1, 2, 2.5 or 5 times a power of ten', () => {
    expect(niceTicks(0, 1, 5)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(niceTicks(0, 8.4, 5)).toEqual([0, 2, 4, 6, 8, 10]);
    expect(niceTicks(0.13, 0.87, 4)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(niceTicks(0, 10, 4)).toEqual([0, 2.5, 5, 7.5, 10]);
    expect(niceTicks(1, 7, 6)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(niceTicks(-3, 12, 5)).toEqual([-5, 0, 5, 10, 15]);
  });

  it('handles a single value, reversed bounds and non-finite input', () => {
    expect(niceTicks(5, 5).length).toBeGreaterThan(1);
    expect(niceTicks(5, 5)[0]).toBeLessThan(5);
    expect(niceTicks(10, 0)).toEqual(niceTicks(0, 10));
    expect(niceTicks(Number.NaN, 1)).toEqual([0, 1]);
  });

  it('first tick at or below the minimum, last at or above the maximum', () => {
    for (const [lo, hi] of [[0.0312, 0.987], [17, 4321], [-0.5, 0.25], [1e-6, 3e-6]] as const) {
      const t = niceTicks(lo, hi, 5);
      expect(t[0]).toBeLessThanOrEqual(lo);
      expect(t[t.length - 1]).toBeGreaterThanOrEqual(hi);
      expect(t.length).toBeLessThanOrEqual(12);
    }
  });
});

describe('formatTick', () => {
  it('keeps labels short', () => {
    expect(formatTick(0.25)).toBe('0.25');
    expect(formatTick(3)).toBe('3');
    expect(formatTick(12_000)).toBe('12k');
    expect(formatTick(2_500_000)).toBe('2.5M');
    expect(formatTick(0.1 + 0.2)).toBe('0.3');
  });
});

describe('lineChart', () => {
  const chart = (series: Parameters<typeof lineChart>[0]['series']) =>
    lineChart({ title: 'Accuracy by version', xLabel: 'model version', yLabel: 'accuracy', series, yMin: 0, yMax: 1 });

  it('draws axes, ticks, labels, a legend, one line and one point per value', () => {
    const svg = chart([
      { name: 'evaluation', points: [[0, 0.1], [1, 0.5], [2, 0.8]] },
      { name: 'training', points: [[0, 0.2], [1, 0.6], [2, 0.9]], dashed: true },
    ]);
    wellFormed(svg);
    expect(svg).toContain('<title id="accuracy-by-version-title">Accuracy by version</title>');
    expect(svg).toContain('>model version</text>');
    expect(svg).toContain('>accuracy</text>');
    expect(svg.match(/<polyline /g)).toHaveLength(2);
    expect(svg.match(/<circle /g)).toHaveLength(6);
    expect(svg).toContain('stroke-dasharray="5 3"');
    for (const tick of ['0', '0.2', '0.4', '0.6', '0.8', '1']) expect(svg).toContain(`>${tick}</text>`);
    expect(svg).toContain('>evaluation</text>');
    expect(svg).toContain('>training</text>');
    expect(svg).toContain('<title>evaluation: model version 2, accuracy 0.8</title>');
  });

  it('breaks a line at missing values and skips them', () => {
    const svg = chart([{ name: 'eval', points: [[0, 0.1], [1, 0.2], [2, null], [3, 0.4], [4, 0.5]] }]);
    expect(svg.match(/<polyline /g)).toHaveLength(2);
    expect(svg.match(/<circle /g)).toHaveLength(4);
  });

  it('says "no data" instead of drawing nothing, and escapes every text', () => {
    const empty = chart([{ name: 'eval', points: [[0, null]] }]);
    wellFormed(empty);
    expect(empty).toContain('>no data</text>');
    const hostile = lineChart({ title: 'A <b> & "c"', xLabel: 'x<', yLabel: 'y&', series: [{ name: '<script>alert(1)</script>', points: [[1, 1], [2, 2]] }] });
    wellFormed(hostile);
    expect(hostile).not.toContain('<script>');
    expect(hostile).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
  });

  it('is deterministic', () => {
    const series = [{ name: 's', points: [[1, 3], [2, 1]] as Array<[number, number]> }];
    expect(chart(series)).toBe(chart(series));
  });
});

describe('barChart', () => {
  it('draws one bar per category and series, grouped or stacked', () => {
    const o = { title: 'Updates per node', xLabel: 'node', yLabel: 'updates', categories: ['n1', 'n2', 'n3'], series: [{ name: 'accepted', values: [3, 2, null] }, { name: 'rejected', values: [0, 1, 1] }] };
    const grouped = barChart(o);
    wellFormed(grouped);
    expect(grouped.match(/<rect [^>]*><title>/g)).toHaveLength(5);
    expect(grouped).toContain('<title>n2 — rejected: 1</title>');
    const stacked = barChart({ ...o, stacked: true });
    wellFormed(stacked);
    expect(stacked.match(/<rect [^>]*><title>/g)).toHaveLength(5);
    for (const label of ['>n1</text>', '>n2</text>', '>n3</text>', '>accepted</text>', '>rejected</text>']) expect(grouped).toContain(label);
  });

  it('rotates long or many category labels, and handles no data', () => {
    const many = barChart({ title: 't', xLabel: 'x', yLabel: 'y', categories: Array.from({ length: 14 }, (_, i) => `node-${i}`), series: [{ name: 's', values: Array.from({ length: 14 }, (_, i) => i) }] });
    wellFormed(many);
    expect(many).toContain('transform="rotate(-45');
    const none = barChart({ title: 't', xLabel: 'x', yLabel: 'y', categories: [], series: [] });
    wellFormed(none);
    expect(none).toContain('>no data</text>');
  });
});

describe('chartGrid', () => {
  it('nests each chart at its cell under one title; a fixed yMax puts the panels on one scale', () => {
    const panel = (title: string, v: number) => barChart({ title, xLabel: 'f', yLabel: 'accuracy', categories: ['0', '1'], series: [{ name: 's', values: [v, v / 2] }], width: 300, height: 200, yMax: 1 });
    const grid = chartGrid({ title: 'All', charts: [panel('A', 0.9), panel('B', 0.5), panel('C', 0.1)], columns: 2 });
    wellFormed(grid);
    // 2 columns of 300 px, 2 rows of 200 px under a 32 px title.
    expect(grid).toMatch(/^<svg [^>]*width="600" height="432"/);
    expect([...grid.matchAll(/<svg x="(\d+)" y="(\d+)"/g)].map((m) => [Number(m[1]), Number(m[2])])).toEqual([[0, 32], [300, 32], [0, 232]]);
    // yMax 1: the top tick of every panel is 1, whatever its data (0.1 would otherwise give a 0.1 axis).
    for (const t of ['A', 'B', 'C']) expect(grid).toContain(`<title id="${t.toLowerCase()}-title">${t}</title>`);
    expect(grid.match(/text-anchor="end" fill="#333333">1<\/text>/g)).toHaveLength(3);
    expect(() => chartGrid({ title: 'x', charts: ['<g/>'], columns: 1 })).toThrow(TypeError);
  });
});

describe('heatmap', () => {
  it('draws a cell per row and column, coloured by status, with tooltips and a legend', () => {
    const svg = heatmap({
      title: 'Participation', xLabel: 'round', yLabel: 'node', rows: ['node-1', 'node-2'], columns: ['1', '2', '3'],
      cells: [
        { row: 'node-1', column: '1', status: 'accepted', label: '10' },
        { row: 'node-1', column: '2', status: 'rejected' },
        { row: 'node-2', column: '3', status: 'accepted', intensity: 0.5 },
      ],
      legend: [{ status: 'accepted', label: 'accepted', color: '#009E73' }, { status: 'rejected', label: 'rejected', color: '#D55E00' }],
      emptyLabel: 'not expected',
    });
    wellFormed(svg);
    expect(svg.match(/<rect [^>]*><title>/g)).toHaveLength(6);
    expect(svg).toContain('fill="#D55E00"><title>node node-1, round 2: rejected</title>');
    expect(svg).toContain('fill-opacity="0.50"');
    expect(svg).toContain('<title>node node-2, round 1: nothing</title>');
    for (const label of ['>node-1</text>', '>node-2</text>', '>1</text>', '>3</text>', '>accepted</text>', '>not expected</text>']) expect(svg).toContain(label);
  });
});

describe('barChart labels (issue 15)', () => {
  const nodes = (n: number): string[] => Array.from({ length: n }, (_, i) => `node-${i + 1}`);
  const labelsOf = (svg: string): Array<{ x: number; rotated: boolean; text: string }> =>
    [...svg.matchAll(/<text x="([\d.]+)" y="[\d.]+" text-anchor="(?:end|middle)" fill="[^"]+"( transform="rotate\(-45[^"]*")?>([^<]*)<\/text>/g)]
      .map((m) => ({ x: Number(m[1]), rotated: Boolean(m[2]), text: m[3]! }))
      .filter((l) => l.text.startsWith('node-') || l.text.startsWith('a-very'));

  it('with 10 nodes the labels turn 45° (node-10 is wider than its band), with room below for them', () => {
    const svg = barChart({ title: 't', xLabel: 'node', yLabel: 'updates', categories: nodes(10), series: [{ name: 'accepted', values: Array(10).fill(3) }], stacked: true });
    const labels = labelsOf(svg);
    expect(labels.map((l) => l.text)).toEqual(nodes(10));
    expect(labels.every((l) => l.rotated)).toBe(true);
  });

  it('with 3 nodes they stay level and do not overlap', () => {
    const svg = barChart({ title: 't', xLabel: 'node', yLabel: 'updates', categories: nodes(3), series: [{ name: 'accepted', values: [1, 2, 3] }], stacked: true });
    const labels = labelsOf(svg);
    expect(labels.every((l) => !l.rotated)).toBe(true);
    for (let i = 1; i < labels.length; i++) {
      const gap = labels[i]!.x - labels[i - 1]!.x;
      expect(gap).toBeGreaterThan((textWidth(labels[i]!.text) + textWidth(labels[i - 1]!.text)) / 2);
    }
  });

  it('a very long label is cut with an ellipsis; the bar\'s tooltip keeps it whole', () => {
    const long = 'a-very-long-node-identifier-from-a-hospital-network';
    const svg = barChart({ title: 't', xLabel: 'node', yLabel: 'updates', categories: [long], series: [{ name: 'accepted', values: [1] }] });
    expect(labelsOf(svg)[0]!.text).toBe(`${long.slice(0, 23)}…`);
    expect(svg).toContain(`<title>${long} — accepted: 1</title>`);
  });
});
