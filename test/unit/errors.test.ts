import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, ErrorCodes, FedStreamError, retry, toFedStreamError } from '../../src/common/index.ts';

const doc = readFileSync(new URL('../../docs/errors.md', import.meta.url), 'utf8');

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : [];
  });
}

describe('error catalogue', () => {
  it('documents every code in docs/errors.md with its retriable flag', () => {
    for (const [code, { retriable }] of Object.entries(ErrorCodes)) {
      const row = doc.split('\n').find((line) => line.startsWith(`| \`${code}\` |`));
      expect(row, `docs/errors.md lacks a row for ${code}`).toBeDefined();
      expect(row).toContain(`| ${retriable ? 'yes' : 'no'} |`);
    }
  });

  it('documents no code that does not exist', () => {
    const documented = [...doc.matchAll(/^\| `([A-Z_]+)` \|/gm)].map((m) => m[1]);
    expect(documented.sort()).toEqual(Object.keys(ErrorCodes).sort());
  });

  it('uses every code somewhere outside the catalogue', () => {
    const src = sources(new URL('../../src', import.meta.url).pathname)
      .filter((p) => !p.endsWith('common/errors.ts'))
      .map((p) => readFileSync(p, 'utf8'))
      .join('\n');
    const unused = Object.keys(ErrorCodes).filter((code) => !src.includes(`'${code}'`) && code !== 'CONFIG_INVALID');
    expect(unused, 'codes defined but never raised').toEqual([]);
  });
});

describe('FedStreamError', () => {
  it('takes retriable from the code unless overridden', () => {
    expect(new FedStreamError('TRANSPORT_CONNECTION', 'x').retriable).toBe(true);
    expect(new FedStreamError('TRANSPORT_CONNECTION', 'x', { retriable: false }).retriable).toBe(false);
    const c = new ConfigError('rounds.count', 'expected a positive integer', { source: 'p.yaml' });
    expect(c.retriable).toBe(false);
    expect(c.message).toBe('p.yaml: rounds.count: expected a positive integer');
    expect(c.path).toBe('rounds.count');
  });

  it('wraps foreign errors keeping the cause', () => {
    const cause = new TypeError('boom');
    const e = toFedStreamError(cause, 'INTERNAL', 'while testing');
    expect(e.code).toBe('INTERNAL');
    expect(e.cause).toBe(cause);
    expect(e.message).toBe('while testing: boom');
  });
});

describe('retry', () => {
  it('retries retriable errors and stops at the first success', async () => {
    let calls = 0;
    const value = await retry(async () => {
      calls++;
      if (calls < 3) throw new FedStreamError('TRANSPORT_TIMEOUT', 'slow');
      return 42;
    }, { initialDelayMs: 1 });
    expect(value).toBe(42);
    expect(calls).toBe(3);
  });

  it('never retries a non-retriable error', async () => {
    let calls = 0;
    await expect(retry(async () => { calls++; throw new ConfigError('a', 'bad'); }, { initialDelayMs: 1 })).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
    expect(calls).toBe(1);
  });

  it('gives up after the configured retries', async () => {
    let calls = 0;
    await expect(retry(async () => { calls++; throw new FedStreamError('TRANSPORT_CONNECTION', 'down'); }, { retries: 2, initialDelayMs: 1 })).rejects.toMatchObject({ code: 'TRANSPORT_CONNECTION' });
    expect(calls).toBe(3);
  });
});
