/**
 * Plots for the reports as inline SVG, written by hand: a line chart, a grouped bar chart and a
 * categorical heatmap, each with a title, axes, ticks, axis labels and a legend. No dependencies,
 * deterministic output (same input, same bytes), every text escaped.
 */

/** Okabe–Ito: distinguishable with the common colour-vision deficiencies. */
export const PALETTE = ['#0072B2', '#E69F00', '#009E73', '#D55E00', '#CC79A7', '#56B4E9', '#8C6D1F', '#000000'] as const;

const FONT = 'font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif"';
const AXIS = '#333333';
const GRID = '#e5e5e5';
const MUTED = '#666666';

/** Escapes text for XML / HTML content and attribute values. */
export function escapeXml(value: unknown): string {
  return String(value)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

/**
 * "Nice" tick values covering [min, max]: steps of 1, 2 or 5 × 10^k, about `count` of them, the
 * first at or below min and the last at or above max.
 */
export function niceTicks(min: number, max: number, count = 5): number[] {
  if (!Number.isFinite(min) || !Number.isFinite(max)) return [0, 1];
  if (min > max) [min, max] = [max, min];
  if (min === max) {
    const pad = min === 0 ? 1 : Math.abs(min) / 2;
    min -= pad;
    max += pad;
  }
  const raw = (max - min) / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * mag).find((s) => s >= raw) ?? 10 * mag;
  const first = Math.floor(min / step) * step;
  const ticks: number[] = [];
  for (let v = first; v <= max + step * 1e-9; v += step) ticks.push(roundTo(v, step));
  if (ticks[ticks.length - 1]! < max) ticks.push(roundTo(ticks[ticks.length - 1]! + step, step));
  return ticks;
}

function roundTo(v: number, step: number): number {
  const decimals = Math.max(0, -Math.floor(Math.log10(step)) + 1);
  return Number(v.toFixed(Math.min(12, decimals)));
}

/** Short tick labels: 1200 → 1.2k, 0.25 → 0.25, 3 → 3. */
export function formatTick(v: number): string {
  const a = Math.abs(v);
  if (a >= 1e9) return `${trim(v / 1e9)}G`;
  if (a >= 1e6) return `${trim(v / 1e6)}M`;
  if (a >= 1e4) return `${trim(v / 1e3)}k`;
  return trim(v);
}

function trim(v: number): string {
  return String(Number(v.toPrecision(4)));
}

function slug(text: string): string {
  return text.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 40) || 'chart';
}

/** A chart's canvas and plot margins, px (shared with svg-grid.ts). */
export interface Frame {
  width: number;
  height: number;
  left: number;
  right: number;
  top: number;
  bottom: number;
}

export function open(title: string, f: Frame, description: string): string {
  const id = slug(title);
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${f.width} ${f.height}" width="${f.width}" height="${f.height}" role="img" aria-labelledby="${id}-title ${id}-desc" ${FONT} font-size="12">` +
    `<title id="${id}-title">${escapeXml(title)}</title><desc id="${id}-desc">${escapeXml(description)}</desc>` +
    `<rect x="0" y="0" width="${f.width}" height="${f.height}" fill="#ffffff"/>` +
    `<text x="${f.width / 2}" y="20" text-anchor="middle" font-size="15" font-weight="600" fill="${AXIS}">${escapeXml(title)}</text>`;
}

function axisLabels(f: Frame, xLabel: string, yLabel: string): string {
  const cy = f.top + (f.height - f.top - f.bottom) / 2;
  return `<text x="${f.left + (f.width - f.left - f.right) / 2}" y="${f.height - 8}" text-anchor="middle" fill="${AXIS}">${escapeXml(xLabel)}</text>` +
    `<text x="14" y="${cy}" text-anchor="middle" fill="${AXIS}" transform="rotate(-90 14 ${cy})">${escapeXml(yLabel)}</text>`;
}

function legend(items: { name: string; color: string; dashed?: boolean; square?: boolean }[], x: number, y: number, maxWidth: number): string {
  let cx = x;
  let cy = y;
  const out: string[] = [];
  for (const item of items) {
    const w = legendWidth(item.name);
    if (cx + w > x + maxWidth && cx > x) {
      cx = x;
      cy += 16;
    }
    const mark = item.square
      ? `<rect x="${cx}" y="${cy - 9}" width="12" height="12" fill="${item.color}" stroke="#999999" stroke-width="0.5"/>`
      : `<line x1="${cx}" y1="${cy - 4}" x2="${cx + 18}" y2="${cy - 4}" stroke="${item.color}" stroke-width="2.5"${item.dashed ? ' stroke-dasharray="5 3"' : ''}/>`;
    out.push(`<g class="legend-item">${mark}<text x="${cx + 22}" y="${cy}" fill="${AXIS}">${escapeXml(item.name)}</text></g>`);
    cx += w;
  }
  return `<g class="legend">${out.join('')}</g>`;
}

/** Room for one legend entry: mark, gap, text (about 7 px a character at 12 px), spacing. */
function legendWidth(name: string): number {
  return 40 + Math.min(40, name.length) * 7;
}

function legendRows(names: string[], maxWidth: number): number {
  let rows = 1;
  let width = 0;
  for (const n of names) {
    const w = legendWidth(n);
    if (width + w > maxWidth && width > 0) {
      rows++;
      width = 0;
    }
    width += w;
  }
  return names.length === 0 ? 0 : rows;
}

function noData(f: Frame): string {
  return `<text x="${f.width / 2}" y="${f.height / 2}" text-anchor="middle" fill="${MUTED}">no data</text></svg>`;
}

// ---------------------------------------------------------------------------------------------
// Line chart

export interface LineSeries {
  name: string;
  /** [x, y]; a null y breaks the line. */
  points: Array<[number, number | null]>;
  color?: string;
  dashed?: boolean;
}

export interface LineChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  series: LineSeries[];
  width?: number;
  height?: number;
  /** Fix the y range (e.g. 0..1 for accuracy); otherwise it fits the data. */
  yMin?: number;
  yMax?: number;
  /** Integer x ticks only (versions, rounds). Default true. */
  integerX?: boolean;
}

export function lineChart(o: LineChartOptions): string {
  const series = o.series.map((s, i) => ({ ...s, color: s.color ?? PALETTE[i % PALETTE.length]!, points: s.points.filter(([x]) => Number.isFinite(x)) }));
  const width = o.width ?? 640;
  const plotWidth = width - 64 - 20;
  const lrows = legendRows(series.map((s) => s.name), plotWidth);
  const f: Frame = { width, height: o.height ?? 320, left: 64, right: 20, top: 44 + lrows * 16, bottom: 46 };
  const desc = `${o.yLabel} by ${o.xLabel}: ${series.map((s) => s.name).join(', ')}`;
  let svg = open(o.title, f, desc);
  const ys = series.flatMap((s) => s.points.map(([, y]) => y)).filter((y): y is number => y !== null && Number.isFinite(y));
  const xs = series.flatMap((s) => s.points.map(([x]) => x));
  if (ys.length === 0 || xs.length === 0) return svg + axisLabels(f, o.xLabel, o.yLabel) + noData(f);

  const yTicks = niceTicks(o.yMin ?? Math.min(...ys), o.yMax ?? Math.max(...ys), 5);
  const y0 = o.yMin ?? yTicks[0]!;
  const y1 = o.yMax ?? yTicks[yTicks.length - 1]!;
  let xTicks = niceTicks(Math.min(...xs), Math.max(...xs), Math.min(8, Math.max(1, new Set(xs).size - 1)));
  if (o.integerX ?? true) xTicks = [...new Set(xTicks.filter((t) => Number.isInteger(t)))];
  const xMin = Math.min(xTicks[0]!, ...xs);
  const xMax = Math.max(xTicks[xTicks.length - 1]!, ...xs);
  const pw = f.width - f.left - f.right;
  const ph = f.height - f.top - f.bottom;
  const sx = (x: number): number => f.left + (xMax === xMin ? pw / 2 : ((x - xMin) / (xMax - xMin)) * pw);
  const sy = (y: number): number => f.top + ph - (y1 === y0 ? ph / 2 : ((y - y0) / (y1 - y0)) * ph);
  const n = (v: number): string => v.toFixed(1);

  const grid: string[] = [];
  for (const t of yTicks.filter((t) => t >= y0 - 1e-12 && t <= y1 + 1e-12)) {
    grid.push(`<line x1="${f.left}" y1="${n(sy(t))}" x2="${f.left + pw}" y2="${n(sy(t))}" stroke="${GRID}"/>`);
    grid.push(`<text x="${f.left - 6}" y="${n(sy(t) + 4)}" text-anchor="end" fill="${AXIS}">${escapeXml(formatTick(t))}</text>`);
  }
  for (const t of xTicks) {
    grid.push(`<line x1="${n(sx(t))}" y1="${f.top + ph}" x2="${n(sx(t))}" y2="${f.top + ph + 5}" stroke="${AXIS}"/>`);
    grid.push(`<text x="${n(sx(t))}" y="${f.top + ph + 18}" text-anchor="middle" fill="${AXIS}">${escapeXml(formatTick(t))}</text>`);
  }
  svg += `<g class="grid">${grid.join('')}</g>`;
  svg += `<g class="axes"><line x1="${f.left}" y1="${f.top}" x2="${f.left}" y2="${f.top + ph}" stroke="${AXIS}"/><line x1="${f.left}" y1="${f.top + ph}" x2="${f.left + pw}" y2="${f.top + ph}" stroke="${AXIS}"/></g>`;

  for (const s of series) {
    const segments: string[][] = [[]];
    for (const [x, y] of [...s.points].sort((a, b) => a[0] - b[0])) {
      if (y === null || !Number.isFinite(y)) {
        if (segments[segments.length - 1]!.length > 0) segments.push([]);
        continue;
      }
      segments[segments.length - 1]!.push(`${n(sx(x))},${n(sy(y))}`);
    }
    const lines = segments.filter((seg) => seg.length > 1)
      .map((seg) => `<polyline points="${seg.join(' ')}" fill="none" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="5 3"' : ''}/>`);
    const dots = s.points.filter(([, y]) => y !== null && Number.isFinite(y))
      .map(([x, y]) => `<circle cx="${n(sx(x))}" cy="${n(sy(y!))}" r="3" fill="${s.color}"><title>${escapeXml(`${s.name}: ${o.xLabel} ${formatTick(x)}, ${o.yLabel} ${trim(y!)}`)}</title></circle>`);
    svg += `<g class="series" data-name="${escapeXml(s.name)}">${lines.join('')}${dots.join('')}</g>`;
  }
  svg += legend(series.map((s) => ({ name: s.name, color: s.color, dashed: s.dashed })), f.left, 42, pw);
  return svg + axisLabels(f, o.xLabel, o.yLabel) + '</svg>';
}

// ---------------------------------------------------------------------------------------------
// Bar chart

export interface BarSeries {
  name: string;
  /** One value per category; null leaves a gap. */
  values: Array<number | null>;
  color?: string;
}

export interface BarChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  categories: string[];
  series: BarSeries[];
  width?: number;
  height?: number;
  /** Stack the series instead of grouping them side by side. */
  stacked?: boolean;
  /** Fix the top of the y axis (e.g. 1 for accuracy, so that panels compare); otherwise it fits the data. */
  yMax?: number;
}

/** Category labels longer than this are cut with an ellipsis. */
const MAX_LABEL_CHARS = 24;

/** Estimated width in px of `text` at the charts' 12 px sans-serif (an average glyph ~0.6 em; digits and capitals wider than i, l). */
export function textWidth(text: string): number {
  let w = 0;
  for (const ch of text) w += /[il.,:;|!'` ]/.test(ch) ? 3.5 : /[A-Zmw@%]/.test(ch) ? 9.5 : 7;
  return w;
}

export function barChart(o: BarChartOptions): string {
  const series = o.series.map((s, i) => ({ ...s, color: s.color ?? PALETTE[i % PALETTE.length]! }));
  const width = o.width ?? Math.max(480, Math.min(1000, 100 + o.categories.length * (o.stacked ? 36 : 18 * Math.max(2, series.length))));
  const plotWidth = width - 64 - 20;
  // Labels that do not fit their band side by side (10 nodes: "node-10" is wider than a 40 px band) turn 45°,
  // with room below for the longest; a very long one is cut (the bar's tooltip has it whole).
  const labels = o.categories.map((c) => (c.length > MAX_LABEL_CHARS ? `${c.slice(0, MAX_LABEL_CHARS - 1)}…` : c));
  const widest = Math.max(0, ...labels.map(textWidth));
  const rotate = o.categories.length > 0 && widest > plotWidth / o.categories.length - 6;
  const bottom = rotate ? Math.ceil(30 + widest * Math.SQRT1_2) : 46;
  const lrows = legendRows(series.map((s) => s.name), plotWidth);
  const f: Frame = { width, height: o.height ?? 274 + bottom + lrows * 16, left: 64, right: 20, top: 44 + lrows * 16, bottom };
  let svg = open(o.title, f, `${o.yLabel} by ${o.xLabel}: ${series.map((s) => s.name).join(', ')}`);
  const totals = o.categories.map((_, i) => o.stacked
    ? series.reduce((sum, s) => sum + Math.max(0, s.values[i] ?? 0), 0)
    : Math.max(0, ...series.map((s) => s.values[i] ?? 0)));
  if (o.categories.length === 0 || series.length === 0) return svg + axisLabels(f, o.xLabel, o.yLabel) + noData(f);
  const top = Math.max(...totals);
  // A little headroom, so that the tallest bar does not touch the frame.
  const ticks = o.yMax !== undefined && o.yMax > 0 ? niceTicks(0, o.yMax, 5) : niceTicks(0, top > 0 ? top * 1.05 : 1, 5);
  const yMax = ticks[ticks.length - 1]!;
  const pw = f.width - f.left - f.right;
  const ph = f.height - f.top - f.bottom;
  const sy = (v: number): number => f.top + ph - (v / yMax) * ph;
  const n = (v: number): string => v.toFixed(1);
  const band = pw / o.categories.length;
  const inner = band * 0.8;

  const parts: string[] = [];
  for (const t of ticks) {
    parts.push(`<line x1="${f.left}" y1="${n(sy(t))}" x2="${f.left + pw}" y2="${n(sy(t))}" stroke="${GRID}"/>`);
    parts.push(`<text x="${f.left - 6}" y="${n(sy(t) + 4)}" text-anchor="end" fill="${AXIS}">${escapeXml(formatTick(t))}</text>`);
  }
  const bars: string[] = [];
  o.categories.forEach((cat, i) => {
    const x0 = f.left + i * band + (band - inner) / 2;
    let stackBase = 0;
    series.forEach((s, k) => {
      const v = s.values[i];
      if (v === null || v === undefined || !Number.isFinite(v)) return;
      const value = Math.max(0, v);
      const w = o.stacked ? inner : inner / series.length;
      const x = o.stacked ? x0 : x0 + k * w;
      const yTop = sy(stackBase + value);
      const h = sy(stackBase) - yTop;
      if (o.stacked) stackBase += value;
      bars.push(`<rect x="${n(x)}" y="${n(yTop)}" width="${n(Math.max(1, w - 1))}" height="${n(Math.max(0, h))}" fill="${s.color}"><title>${escapeXml(`${cat} — ${s.name}: ${trim(v)}`)}</title></rect>`);
    });
    const cx = f.left + i * band + band / 2;
    const ly = f.top + ph + 16;
    const label = escapeXml(labels[i]!);
    parts.push(rotate
      ? `<text x="${n(cx)}" y="${ly}" text-anchor="end" fill="${AXIS}" transform="rotate(-45 ${n(cx)} ${ly})">${label}</text>`
      : `<text x="${n(cx)}" y="${ly}" text-anchor="middle" fill="${AXIS}">${label}</text>`);
  });
  svg += `<g class="grid">${parts.join('')}</g><g class="bars">${bars.join('')}</g>`;
  svg += `<g class="axes"><line x1="${f.left}" y1="${f.top}" x2="${f.left}" y2="${f.top + ph}" stroke="${AXIS}"/><line x1="${f.left}" y1="${f.top + ph}" x2="${f.left + pw}" y2="${f.top + ph}" stroke="${AXIS}"/></g>`;
  svg += legend(series.map((s) => ({ name: s.name, color: s.color, square: true })), f.left, 42, pw);
  return svg + axisLabels(f, o.xLabel, o.yLabel) + '</svg>';
}

// ---------------------------------------------------------------------------------------------
// Heatmap

export interface HeatmapCell {
  row: string;
  column: string;
  /** One of the legend's statuses: decides the colour. */
  status: string;
  /** Shown in the cell when it fits, and in the tooltip. */
  label?: string;
  /** 0..1 opacity of the status colour (e.g. a node's share of a round's examples); default 1. */
  intensity?: number;
}

export interface HeatmapOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  rows: string[];
  columns: string[];
  cells: HeatmapCell[];
  legend: { status: string; label: string; color: string }[];
  /** Colour of cells with no entry (default light grey); named "empty" in the legend when given. */
  emptyLabel?: string;
  width?: number;
}

export function heatmap(o: HeatmapOptions): string {
  const rowLabel = Math.min(180, 34 + Math.max(4, ...o.rows.map((r) => r.length)) * 7);
  const cellW = Math.max(14, Math.min(48, Math.floor(((o.width ?? 760) - rowLabel - 20) / Math.max(1, o.columns.length))));
  const cellH = o.rows.length > 30 ? 12 : 22;
  const legendItems = [...o.legend.map((l) => ({ name: l.label, color: l.color, square: true })), ...(o.emptyLabel ? [{ name: o.emptyLabel, color: '#f2f2f2', square: true }] : [])];
  // As wide as the cells need (o.width is the most it may take), but room for the legend.
  const legendNeed = rowLabel + 20 + legendItems.reduce((sum, l) => sum + legendWidth(l.name), 0);
  const width = Math.max(rowLabel + 20 + cellW * Math.max(1, o.columns.length), Math.min(legendNeed, o.width ?? 760), 360);
  const lrows = legendRows(legendItems.map((l) => l.name), width - rowLabel - 20);
  const f: Frame = { width, height: 0, left: rowLabel, right: 20, top: 44 + lrows * 16, bottom: 46 };
  f.height = f.top + cellH * Math.max(1, o.rows.length) + f.bottom;
  let svg = open(o.title, f, `${o.yLabel} by ${o.xLabel}`);
  if (o.rows.length === 0 || o.columns.length === 0) return svg + axisLabels(f, o.xLabel, o.yLabel) + noData(f);
  const colors = new Map(o.legend.map((l) => [l.status, l.color]));
  const byKey = new Map(o.cells.map((c) => [`${c.row}\u0000${c.column}`, c]));
  const n = (v: number): string => v.toFixed(1);
  const parts: string[] = [];
  o.rows.forEach((row, r) => {
    const y = f.top + r * cellH;
    parts.push(`<text x="${f.left - 6}" y="${n(y + cellH / 2 + 4)}" text-anchor="end" fill="${AXIS}"${cellH < 14 ? ' font-size="9"' : ''}>${escapeXml(row)}</text>`);
    o.columns.forEach((col, c) => {
      const x = f.left + c * cellW;
      const cell = byKey.get(`${row}\u0000${col}`);
      const fill = cell ? (colors.get(cell.status) ?? MUTED) : '#f2f2f2';
      const opacity = cell?.intensity === undefined ? 1 : Math.max(0.25, Math.min(1, cell.intensity));
      const tip = cell ? `${o.yLabel} ${row}, ${o.xLabel} ${col}: ${cell.status}${cell.label ? ` (${cell.label})` : ''}` : `${o.yLabel} ${row}, ${o.xLabel} ${col}: nothing`;
      parts.push(`<rect x="${n(x)}" y="${n(y)}" width="${cellW - 1}" height="${cellH - 1}" fill="${fill}"${opacity < 1 ? ` fill-opacity="${opacity.toFixed(2)}"` : ''}><title>${escapeXml(tip)}</title></rect>`);
      if (cell?.label && cellW >= 30 && cellH >= 18 && cell.label.length * 6 < cellW) {
        parts.push(`<text x="${n(x + cellW / 2)}" y="${n(y + cellH / 2 + 4)}" text-anchor="middle" font-size="10" fill="#ffffff">${escapeXml(cell.label)}</text>`);
      }
    });
  });
  const every = Math.max(1, Math.ceil(o.columns.length / Math.max(1, Math.floor((f.width - f.left - f.right) / 28))));
  o.columns.forEach((col, c) => {
    if (c % every !== 0) return;
    parts.push(`<text x="${n(f.left + c * cellW + cellW / 2)}" y="${f.top + cellH * o.rows.length + 16}" text-anchor="middle" fill="${AXIS}">${escapeXml(col)}</text>`);
  });
  svg += `<g class="cells">${parts.join('')}</g>`;
  svg += legend(legendItems, f.left, 42, f.width - f.left - f.right);
  // The x label centred under the cells, not under the whole (legend-wide) picture.
  return svg + axisLabels({ ...f, right: f.width - f.left - cellW * o.columns.length }, o.xLabel, o.yLabel) + '</svg>';
}
