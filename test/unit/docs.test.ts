import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { buildProgram } from '../../src/cli/program.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };

function commandPaths(cmd: Command, prefix: string[] = []): string[] {
  return cmd.commands.flatMap((c) => {
    const here = [...prefix, c.name()];
    return [here.join(' '), ...commandPaths(c, here)];
  });
}

describe('README', () => {
  it('names only fedstream subcommands that exist', () => {
    const program = buildProgram();
    const known = new Set(commandPaths(program));
    // Commands as a reader would type them: `npx fedstream X` or `fedstream X` at the start of a code span or line.
    const mentioned = [...readme.matchAll(/(?:^|`|npx )fedstream ([a-z][a-z-]*)(?: ([a-z][a-z-]*))?/gm)];
    expect(mentioned.length).toBeGreaterThan(5);
    for (const [, sub, subsub] of mentioned) {
      expect(known.has(sub!), `README mentions "fedstream ${sub}", which is no command`).toBe(true);
      const hasSubcommands = program.commands.find((c) => c.name() === sub)!.commands.length > 0;
      if (hasSubcommands && subsub) expect(known.has(`${sub} ${subsub}`), `README mentions "fedstream ${sub} ${subsub}"`).toBe(true);
    }
  });

  it('names only npm scripts that exist', () => {
    for (const [, script] of readme.matchAll(/npm run ([a-z][a-z:-]*)/g)) {
      expect(pkg.scripts[script!], `README mentions "npm run ${script}"`).toBeDefined();
    }
    expect(pkg.scripts.test).toBeDefined();
  });

  it('links only to files that exist', () => {
    for (const [, target] of readme.matchAll(/\]\(([^)#:]+)(?:#[^)]*)?\)/g)) {
      expect(existsSync(path.join(ROOT, target!)), `README links to ${target}`).toBe(true);
    }
  });

  it('gives the two set-up commands near the top', () => {
    const quick = readme.indexOf('## Quick start');
    expect(quick).toBeGreaterThan(0);
    const block = readme.slice(quick, quick + 800);
    expect(block).toContain('npx fedstream demo');
    expect(block).toContain('npm test');
  });
});

describe('docs', () => {
  it('link only to files that exist', () => {
    const dir = path.join(ROOT, 'docs');
    for (const file of readdirSync(dir).filter((f) => f.endsWith('.md'))) {
      const text = readFileSync(path.join(dir, file), 'utf8');
      for (const [, target] of text.matchAll(/\]\(([^)#:]+)(?:#[^)]*)?\)/g)) {
        expect(existsSync(path.resolve(dir, target!)), `docs/${file} links to ${target}`).toBe(true);
      }
    }
  });
});

describe('docs/architecture.md', () => {
  it('gives each folder the imports .dependency-cruiser.cjs allows it, and every folder of src/', async () => {
    const text = readFileSync(path.join(ROOT, 'docs', 'architecture.md'), 'utf8');
    const rows = [...text.matchAll(/^\| (\w+) \| ([^|]+) \| [^|]+ \|$/gm)].filter(([, folder]) => folder !== 'folder' && folder !== 'feature');
    const documented = new Map(rows.map(([, folder, imports]) => [folder!, imports!.trim() === '(nothing in src)' ? [] : imports!.split(',').map((s) => s.trim())]));
    const { createRequire } = await import('node:module');
    const config = createRequire(import.meta.url)(path.join(ROOT, '.dependency-cruiser.cjs')) as { forbidden: Array<{ name: string; comment?: string; from: { path: string }; to: { pathNot?: string[] } }> };
    const floors = config.forbidden.filter((r) => r.name.startsWith('floors-'));
    const enforced = new Map(floors.map((r) => [r.name.slice('floors-'.length), (r.to.pathNot ?? []).slice(1).map((p) => p.replace(/^\^src\/|\/$/g, ''))]));
    expect([...documented.keys()].sort()).toEqual([...enforced.keys()].sort());
    for (const [folder, imports] of enforced) expect(documented.get(folder), folder).toEqual(imports);
    const folders = readdirSync(path.join(ROOT, 'src'), { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name).sort();
    expect(folders).toEqual([...enforced.keys()].sort());
  });
});
