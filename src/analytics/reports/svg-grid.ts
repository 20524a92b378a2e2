/**
 * Small multiples: the charts of svg.ts in one grid image (split from svg.ts, which holds the single charts).
 */
import { open, type Frame } from './svg.ts';

/**
 * Charts of svg.ts (each a whole `<svg>`) in a grid, `columns` a row, under one title: small multiples in one
 * image. Each chart is nested at its place as an inner `<svg>` (its own coordinates, title and legend kept); the
 * cells are as large as the largest chart.
 */
export function chartGrid(o: { title: string; charts: string[]; columns: number; description?: string }): string {
  const sizes = o.charts.map((c) => {
    const m = /^<svg [^>]*?width="([\d.]+)" height="([\d.]+)"/.exec(c);
    if (!m) throw new TypeError('chartGrid: expected charts made by this module (an <svg> with width and height)');
    return { w: Number(m[1]), h: Number(m[2]) };
  });
  const columns = Math.max(1, Math.min(o.columns, o.charts.length));
  const cw = Math.max(0, ...sizes.map((s) => s.w));
  const ch = Math.max(0, ...sizes.map((s) => s.h));
  const f: Frame = { width: Math.max(320, columns * cw), height: 32 + Math.ceil(o.charts.length / columns) * ch, left: 0, right: 0, top: 32, bottom: 0 };
  let svg = open(o.title, f, o.description ?? o.title);
  o.charts.forEach((c, i) => {
    const x = (i % columns) * cw;
    const y = 32 + Math.floor(i / columns) * ch;
    svg += c.replace(/^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg" /, `<svg x="${x}" y="${y}" `);
  });
  return svg + '</svg>';
}
