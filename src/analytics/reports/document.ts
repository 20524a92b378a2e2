/**
 * The reports' document model, public so that a caller can compose reports (take sections of one, add or
 * replace sections of another) and render the result once: a Document is a title, a subtitle, key-value
 * metadata and sections; a Section is an id (its HTML anchor), a title and blocks. Renderers: markdown.ts
 * and html.ts.
 *
 * Text in paragraphs, list items, verdicts, captions and metadata values may use two inline spans,
 * `**bold**` and `` `code` ``; everything else is plain text, escaped by the renderers. Table cells are plain
 * text. A plot is an SVG string the renderers trust (svg.ts escapes what it draws).
 */

/** Column alignment in a table: left or right (numbers). */
export type Align = 'l' | 'r';

export interface ParagraphBlock {
  kind: 'paragraph';
  text: string;
}

export interface ListBlock {
  kind: 'list';
  items: string[];
}

export interface TableBlock {
  kind: 'table';
  headers: string[];
  rows: string[][];
  /** Per column (default left). */
  align?: Align[];
  /** What to say instead of an empty table (default `None.`). */
  empty?: string;
}

/** An inline SVG plot with its caption; consecutive plots are laid out side by side in HTML. */
export interface PlotBlock {
  kind: 'plot';
  svg: string;
  caption: string;
}

/** A finding stated as OK or ATTENTION. */
export interface VerdictBlock {
  kind: 'verdict';
  ok: boolean;
  text: string;
}

export type Block = ParagraphBlock | ListBlock | TableBlock | PlotBlock | VerdictBlock;

export interface Section {
  /** Unique in its document: the HTML anchor. */
  id: string;
  title: string;
  /** Shorter title for the table of contents (default: `title`). */
  navTitle?: string;
  blocks: Block[];
}

/** One line of the document's metadata (pipeline, source, generated at, ...). */
export interface KeyValue {
  key: string;
  value: string;
}

export interface Document {
  title: string;
  subtitle: string;
  meta: KeyValue[];
  sections: Section[];
}

/** A report: its document and the document rendered both ways. */
export interface Report {
  title: string;
  document: Document;
  markdown: string;
  html: string;
}

/** The section with this id, if any. */
export function findSection(doc: Document, id: string): Section | undefined {
  return doc.sections.find((s) => s.id === id);
}

/**
 * A copy of `doc` with `sections` in it: each replaces the section of the same id where it stands, or is
 * appended after the others, in order.
 */
export function withSections(doc: Document, sections: readonly Section[]): Document {
  const out = [...doc.sections];
  for (const s of sections) {
    const at = out.findIndex((o) => o.id === s.id);
    if (at >= 0) out[at] = s;
    else out.push(s);
  }
  return { ...doc, sections: out };
}
