/**
 * `fedstream keys`: a participant's key pair into files (private key mode 0600, never printed), its key id and the
 * manifest snippet; the files load as a signer and as a registry entry.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { parseManifest } from '../../src/config/manifest.ts';
import { loadSigner, participantRegistry } from '../../src/protocol/index.ts';

const BIN = path.resolve(import.meta.dirname, '../../bin/fedstream.js');
const run = (args: string[], cwd: string) => spawnSync(process.execPath, [BIN, ...args, '--log-level', 'silent'], { cwd, encoding: 'utf8' });

describe('fedstream keys', () => {
  it('generates a pair into files, prints the key id and a manifest snippet that lists it, never the private key', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'fedstream-keys-cli-'));
    const agg = run(['keys', 'generate', '--role', 'aggregator', '--out', 'keys'], dir);
    expect(agg.status, agg.stderr).toBe(0);
    const node = run(['keys', 'generate', '--role', 'node', '--id', 'node-1', '--out', 'keys', '--valid-until', '2030-01-01T00:00:00Z'], dir);
    expect(node.status, node.stderr).toBe(0);
    const keyFile = path.join(dir, 'keys', 'node-1.key');
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    const privateBody = readFileSync(keyFile, 'utf8').split('\n')[1]!;
    expect(node.stdout).not.toContain(privateBody);
    expect(node.stdout).not.toMatch(/PRIVATE KEY/);
    const signer = loadSigner(keyFile);
    expect(node.stdout).toContain(`node node-1: key id ${signer.keyId}`);
    // The printed snippet is a valid participants section, and the directory is one too.
    const snippet = parse(node.stdout.slice(node.stdout.indexOf('\nparticipants:'))) as { participants: { keys: Record<string, string>[] } };
    expect(snippet.participants.keys[0]).toMatchObject({ id: 'node-1', role: 'node', validUntil: '2030-01-01T00:00:00.000Z' });
    const base = {
      apiVersion: 'fedstream/v1', tenant: 't', name: 'p', model: { inputShape: [2], layers: [{ type: 'dense', units: 2 }] },
      data: { source: 'mnist' }, rounds: { count: 1, targetUpdates: 1, minUpdates: 1 },
    };
    const fromDir = participantRegistry(parseManifest({ ...base, participants: { keysDir: path.join(dir, 'keys') } }));
    expect(fromDir.lookup(signer.keyId)).toMatchObject({ participant: 'node-1', role: 'node' });
    expect(fromDir.participants('aggregator')).toEqual(['aggregator']);

    // An existing pair is kept unless --force.
    const again = run(['keys', 'generate', '--role', 'node', '--id', 'node-1', '--out', 'keys'], dir);
    expect(again.status).not.toBe(0);
    expect(again.stderr).toMatch(/KEY_INVALID.*node-1\.key exists; keep it, or pass --force/);
    const show = run(['keys', 'show', 'keys/node-1.pub', '--id', 'node-1', '--role', 'node'], dir);
    expect(show.stdout).toContain(`key id ${signer.keyId}`);
    const bad = run(['keys', 'generate', '--role', 'node', '--out', 'keys'], dir);
    expect(bad.stderr).toMatch(/--id: a node's key needs its node id/);
  });
});
