/** `fedstream kafka status` with no broker running is an answer (exit 3, one line), not a BROKER_START failure with a stack. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const BIN = path.resolve(import.meta.dirname, '../../bin/fedstream.js');

describe('fedstream kafka status', () => {
  it('says "not running" and exits 3 when no broker runs in the state directory', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'fs-nokafka-'));
    const r = spawnSync(process.execPath, [BIN, 'kafka', 'status'], { env: { ...process.env, FEDSTREAM_KAFKA_DIR: dir }, encoding: 'utf8', timeout: 60_000 });
    expect(r.status).toBe(3);
    expect(r.stderr + r.stdout).toContain(`[kafka] not running (state dir ${dir})`);
    expect(r.stderr).not.toMatch(/BROKER_START|"level":50|stack/);
  });
});
