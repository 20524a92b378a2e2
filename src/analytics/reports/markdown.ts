/**
 * Renders a report {@link Document} as Markdown: the same sections and tables as the HTML; a plot is named
 * where it would be (it is drawn in the HTML report).
 */
import type { Document } from './document.ts';

function mdCell(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
}

/** The document as Markdown (GitHub flavour: pipe tables). */
export function renderMarkdown(doc: Document): string {
  const out: string[] = [`# ${doc.title}`, '', doc.subtitle, ''];
  for (const { key, value } of doc.meta) out.push(`- **${key}:** ${value}`);
  out.push('');
  for (const s of doc.sections) {
    out.push(`## ${s.title}`, '');
    for (const b of s.blocks) {
      if (b.kind === 'paragraph') out.push(b.text, '');
      else if (b.kind === 'verdict') out.push(`**${b.ok ? 'OK' : 'ATTENTION'}:** ${b.text}`, '');
      else if (b.kind === 'list') out.push(...b.items.map((i) => `- ${i}`), '');
      else if (b.kind === 'plot') out.push(`_Plot: ${b.caption} (drawn in the HTML report)._`, '');
      else if (b.rows.length === 0) out.push(`_${b.empty ?? 'None.'}_`, '');
      else {
        const align = b.headers.map((_, i) => (b.align?.[i] === 'r' ? '---:' : '---'));
        out.push(`| ${b.headers.map(mdCell).join(' | ')} |`, `| ${align.join(' | ')} |`);
        for (const r of b.rows) out.push(`| ${r.map(mdCell).join(' | ')} |`);
        out.push('');
      }
    }
  }
  return out.join('\n').replace(/\n{3,}/g, '\n\n').trimEnd() + '\n';
}
