// The reports' public document model and its two renderers, without ClickHouse; and the demo's
// composition of the training and compliance documents.
import { describe, expect, it } from 'vitest';
import { findSection, renderHtml, renderMarkdown, withSections, type Document, type Section } from '../../src/analytics/index.ts';
import { LINEAGE_SECTIONS, composeDemoDocument } from '../../src/demo/report.ts';

const plot = '<svg xmlns="http://www.w3.org/2000/svg"><title>Accuracy</title></svg>';

function doc(): Document {
  return {
    title: 'Training report: acme/<p>',
    subtitle: 'What **matters**, in `code`.',
    meta: [{ key: 'Pipeline', value: 'acme/p' }, { key: 'Generated', value: '2030-01-01 00:00:00 UTC' }],
    sections: [
      { id: 'summary', title: 'Summary', blocks: [{ kind: 'list', items: ['3 versions', 'a | b'] }, { kind: 'verdict', ok: true, text: 'all good.' }] },
      {
        id: 'convergence', title: 'Convergence', blocks: [
          { kind: 'plot', svg: plot, caption: 'Accuracy by version.' },
          { kind: 'plot', svg: plot, caption: 'Loss by version.' },
          { kind: 'table', headers: ['version', 'node'], align: ['r', 'l'], rows: [['1', '<img>'], ['2', 'n|2']] },
          { kind: 'table', headers: ['x'], rows: [], empty: 'Nothing yet.' },
          { kind: 'paragraph', text: 'Query: `convergence`.' },
        ],
      },
    ],
  };
}

describe('report documents', () => {
  it('render as Markdown: headings, meta, lists, verdicts, pipe tables (escaped), plots named', () => {
    expect(renderMarkdown(doc())).toBe([
      '# Training report: acme/<p>', '', 'What **matters**, in `code`.', '',
      '- **Pipeline:** acme/p', '- **Generated:** 2030-01-01 00:00:00 UTC', '',
      '## Summary', '', '- 3 versions', '- a | b', '', '**OK:** all good.', '',
      '## Convergence', '', '_Plot: Accuracy by version. (drawn in the HTML report)._', '', '_Plot: Loss by version. (drawn in the HTML report)._', '',
      '| version | node |', '| ---: | --- |', '| 1 | <img> |', '| 2 | n\\|2 |', '', '_Nothing yet._', '', 'Query: `convergence`.', '',
    ].join('\n'));
  });

  it('render as one self-contained HTML page: escaped text, inline markup, plots side by side, a table of contents', () => {
    const html = renderHtml(doc());
    expect(html.startsWith('<!DOCTYPE html>')).toBe(true);
    expect(html).toContain('<title>Training report: acme/&lt;p&gt;</title>');
    expect(html).toContain('<style>');
    expect(html).not.toMatch(/<script|<link /);
    expect(html).toContain('<p class="subtitle">What <strong>matters</strong>, in <code>code</code>.</p>');
    expect(html).toContain('<nav class="toc"><a href="#summary">Summary</a><a href="#convergence">Convergence</a></nav>');
    expect(html).toContain('<div class="verdict ok"><strong>OK:</strong> all good.</div>');
    expect(html).toContain(`<div class="figures"><figure>${plot}<figcaption>Accuracy by version.</figcaption></figure><figure>${plot}<figcaption>Loss by version.</figcaption></figure></div>`);
    expect(html).toContain('<th class="r">version</th><th>node</th>');
    expect(html).toContain('<td class="r">1</td><td>&lt;img&gt;</td>');
    expect(html).toContain('<p class="empty">Nothing yet.</p>');
    expect(html).toContain('<section id="convergence"><h2>Convergence</h2>');
  });

  it('compose: find a section, replace it in place or append new ones, with a shorter title in the table of contents', () => {
    const base = doc();
    expect(findSection(base, 'summary')?.title).toBe('Summary');
    expect(findSection(base, 'nope')).toBeUndefined();
    const replaced: Section = { id: 'summary', title: 'Summary', blocks: [{ kind: 'paragraph', text: 'new' }] };
    const added: Section = { id: 'extra', title: 'A long title for the extra section', navTitle: 'Extra', blocks: [] };
    const out = withSections(base, [replaced, added]);
    expect(out.sections.map((s) => s.id)).toEqual(['summary', 'convergence', 'extra']);
    expect(out.sections[0]).toBe(replaced);
    expect(base.sections[0]!.blocks).toHaveLength(2); // the original is left alone
    expect(renderHtml(out)).toContain('<a href="#extra">Extra</a></nav>');
    expect(renderHtml(out)).toContain('<section id="extra"><h2>A long title for the extra section</h2>');
    expect(renderMarkdown(out)).toContain('## A long title for the extra section');
  });

  it('the demo adds the compliance lineage sections to the training document, renamed where ids clash', () => {
    const training: Document = { ...doc(), sections: [...doc().sections, { id: 'lineage', title: 'Lineage', blocks: [] }] };
    const compliance: Document = {
      title: 'Compliance', subtitle: '', meta: [], sections: [
        { id: 'summary', title: 'Summary', blocks: [] },
        { id: 'lineage-nodes', title: 'Nodes whose data shaped version 2', blocks: [{ kind: 'table', headers: ['node'], rows: [['node-1']] }] },
        { id: 'lineage', title: 'Lineage: the updates behind each version', blocks: [{ kind: 'table', headers: ['update id'], rows: [['u-1']] }] },
      ],
    };
    const out = composeDemoDocument(training, compliance);
    expect(out.sections.map((s) => s.id)).toEqual(['summary', 'convergence', 'lineage', 'lineage-nodes', 'lineage-updates']);
    expect(out.sections.slice(-2).map((s) => s.navTitle)).toEqual(LINEAGE_SECTIONS.map((s) => s.title));
    expect(out.sections.at(-1)!.blocks).toEqual(compliance.sections[2]!.blocks);
    expect(() => composeDemoDocument(training, { ...compliance, sections: [] })).toThrow(/no section "lineage-nodes"/);
  });
});
