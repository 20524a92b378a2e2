/**
 * Renders a report {@link Document} as one self-contained HTML file: inline CSS (below), plots as inline SVG,
 * no scripts, no external resources; every text from the data escaped.
 */
import type { Document } from './document.ts';
import { escapeXml } from './svg.ts';

/** Plain text with `**bold**` and `code` spans: the only markup the report's prose uses. */
function inlineHtml(text: string): string {
  return escapeXml(text)
    .replace(/\*\*([^*]+)\*\*/g, '<strong>$1</strong>')
    .replace(/`([^`]+)`/g, '<code>$1</code>');
}

/** The report's stylesheet, inlined into each page. */
const CSS = `
:root { color-scheme: light; }
body { font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d1d1f; margin: 0; background: #fafafa; }
main { max-width: 1120px; margin: 0 auto; padding: 24px 32px 64px; background: #fff; }
h1 { font-size: 26px; margin: 8px 0 4px; }
h2 { font-size: 19px; margin: 36px 0 12px; padding-bottom: 4px; border-bottom: 1px solid #e5e5e5; }
p.subtitle { color: #555; margin: 0 0 12px; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 12px 0 8px; color: #333; }
dl.meta dt { font-weight: 600; }
dl.meta dd { margin: 0; }
nav.toc { margin: 12px 0 0; font-size: 13px; }
nav.toc a { margin-right: 14px; color: #0072B2; text-decoration: none; }
.table-wrap { overflow-x: auto; margin: 8px 0 16px; }
table { border-collapse: collapse; font-size: 13px; min-width: 50%; }
th, td { padding: 4px 10px; border-bottom: 1px solid #eee; text-align: left; vertical-align: top; white-space: nowrap; }
td.wrap { white-space: normal; min-width: 240px; }
th { background: #f4f6f8; font-weight: 600; position: sticky; top: 0; }
td.r, th.r { text-align: right; font-variant-numeric: tabular-nums; }
tr:nth-child(even) td { background: #fbfbfc; }
code, td.mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; }
figure { margin: 12px 0 20px; }
figure svg { max-width: 100%; height: auto; border: 1px solid #eee; border-radius: 4px; }
figcaption { color: #555; font-size: 12px; margin-top: 4px; }
.figures { display: flex; flex-wrap: wrap; gap: 16px; }
.verdict { padding: 8px 12px; border-radius: 4px; margin: 8px 0 12px; }
.verdict.ok { background: #e8f5ee; border-left: 4px solid #009E73; }
.verdict.bad { background: #fdeee8; border-left: 4px solid #D55E00; }
.status-OK { color: #00734f; font-weight: 600; }
.status-MISMATCH, .status-MISSING { color: #b34700; font-weight: 600; }
.empty { color: #777; font-style: italic; }
footer { margin-top: 40px; color: #777; font-size: 12px; }
`;

/** The document as a complete HTML page. */
export function renderHtml(doc: Document): string {
  const body: string[] = [];
  body.push(`<h1>${escapeXml(doc.title)}</h1>`, `<p class="subtitle">${inlineHtml(doc.subtitle)}</p>`);
  body.push(`<dl class="meta">${doc.meta.map(({ key, value }) => `<dt>${escapeXml(key)}</dt><dd>${inlineHtml(value)}</dd>`).join('')}</dl>`);
  body.push(`<nav class="toc">${doc.sections.map((s) => `<a href="#${s.id}">${escapeXml(s.navTitle ?? s.title)}</a>`).join('')}</nav>`);
  for (const s of doc.sections) {
    body.push(`<section id="${s.id}"><h2>${escapeXml(s.title)}</h2>`);
    let figures: string[] = [];
    const flushFigures = (): void => {
      if (figures.length > 0) body.push(`<div class="figures">${figures.join('')}</div>`);
      figures = [];
    };
    for (const b of s.blocks) {
      if (b.kind === 'plot') {
        figures.push(`<figure>${b.svg}<figcaption>${inlineHtml(b.caption)}</figcaption></figure>`);
        continue;
      }
      flushFigures();
      if (b.kind === 'paragraph') body.push(`<p>${inlineHtml(b.text)}</p>`);
      else if (b.kind === 'verdict') body.push(`<div class="verdict ${b.ok ? 'ok' : 'bad'}"><strong>${b.ok ? 'OK' : 'ATTENTION'}:</strong> ${inlineHtml(b.text)}</div>`);
      else if (b.kind === 'list') body.push(`<ul>${b.items.map((i) => `<li>${inlineHtml(i)}</li>`).join('')}</ul>`);
      else if (b.rows.length === 0) body.push(`<p class="empty">${escapeXml(b.empty ?? 'None.')}</p>`);
      else {
        const cls = (i: number, text: string): string => {
          const c: string[] = [];
          if (b.align?.[i] === 'r') c.push('r');
          if (/^[0-9a-f]{64}$/.test(text) || /^[0-9a-f]{8}-[0-9a-f]{4}-/.test(text)) c.push('mono');
          if (text.length > 60) c.push('wrap');
          if (/^(OK|MISMATCH|MISSING)$/.test(text)) c.push(`status-${text}`);
          return c.length ? ` class="${c.join(' ')}"` : '';
        };
        const head = b.headers.map((h, i) => `<th${b.align?.[i] === 'r' ? ' class="r"' : ''}>${escapeXml(h)}</th>`).join('');
        const rows = b.rows.map((r) => `<tr>${r.map((c, i) => `<td${cls(i, c)}>${escapeXml(c)}</td>`).join('')}</tr>`).join('');
        body.push(`<div class="table-wrap"><table><thead><tr>${head}</tr></thead><tbody>${rows}</tbody></table></div>`);
      }
    }
    flushFigures();
    body.push('</section>');
  }
  body.push(`<footer>Generated by FedStream from ClickHouse; every table comes from a named query in <code>schemas/clickhouse/queries/</code>.</footer>`);
  return `<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<meta name="viewport" content="width=device-width, initial-scale=1">\n` +
    `<title>${escapeXml(doc.title)}</title>\n<style>${CSS}</style>\n</head>\n<body>\n<main>\n${body.join('\n')}\n</main>\n</body>\n</html>\n`;
}
