/**
 * Signatures and the participant registry (protocol/signing.ts, protocol/participants.ts): the canonical bytes and
 * signature of docs/wire-format.md's example recomputed from the page, Ed25519 sign and verify (RFC 8032), what each
 * verdict code means, rotation windows, and the registry's errors with their field paths.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultCodec, packTensors, unpackTensors, weightsSha256, type ModelUpdateRecord, type RecordTypes, type RoundControlRecord } from '../../src/codec/index.ts';
import { ConfigError, FedStreamError } from '../../src/common/errors.ts';
import { loadManifest, parseManifest, type Manifest } from '../../src/config/manifest.ts';
import {
  ParticipantRegistry, SIGNATURE_HEADERS, canonicalBytes, checkOwnKey, ephemeralSigner, generateKeyPair, keyIdOf, loadSigner, participantRegistry,
  rawPublicKey, sha256Hex, signatureHeaders, signerFromPem, tensorsSha256, verifyRecord, verifySignature, type Signer,
} from '../../src/protocol/index.ts';

const DOC = readFileSync(new URL('../../docs/wire-format.md', import.meta.url), 'utf8');

function block(info: string): string {
  const m = new RegExp('```' + info + '\\n([\\s\\S]*?)```').exec(DOC);
  if (!m) throw new Error(`no \`\`\`${info} block in docs/wire-format.md`);
  return m[1]!;
}

/** The hex of an annotated block: the leading hex words of each line, before its comment. */
function hexOf(text: string): string {
  return text.split('\n').map((line) => (/^((?:[0-9a-f]+ ?)+)/.exec(line)?.[1] ?? '').replace(/\s+/g, '')).join('');
}

/** A signer from an RFC 8032 seed (PKCS#8 DER: a fixed 16-byte prefix, then the 32-byte seed). */
function signerFromSeed(seedHex: string): Signer {
  const der = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), Buffer.from(seedHex, 'hex')]);
  return signerFromPem(String(createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }).export({ format: 'pem', type: 'pkcs8' })), 'seed');
}

const base = parseManifest({
  apiVersion: 'fedstream/v1', tenant: 'acme', name: 'mnist',
  model: { inputShape: [2], layers: [{ type: 'dense', units: 2 }] },
  data: { source: 'mnist', nodes: 2 },
  rounds: { count: 1, targetUpdates: 1, minUpdates: 1 },
});

const W = [{ name: 'w', shape: [2], values: Float32Array.from([1, 2]) }];
function anUpdate(over: Partial<ModelUpdateRecord> = {}): ModelUpdateRecord {
  return {
    updateId: 'u-1', tenant: 'acme', pipeline: 'mnist', nodeId: 'node-1', round: 3, baseVersion: 2, numExamples: 10, tensors: packTensors(W),
    metrics: { loss: 1 }, trainingMs: 1, createdAt: Date.parse('2026-06-01T00:00:00Z'), sdkVersion: 'x', backend: 'x', ...over,
  };
}
function aControl(over: Partial<RoundControlRecord> = {}): RoundControlRecord {
  return { tenant: 'acme', pipeline: 'mnist', round: 1, baseVersion: 0, kind: 'FINISH', config: {}, selectedNodes: [], deadline: 0, minUpdates: 1, targetUpdates: 1, createdAt: Date.parse('2026-06-01T00:00:00Z'), ...over };
}

/** Encodes and signs a record as a writer does; the headers as a reader receives them (Buffers). */
function signed<K extends 'ModelUpdate' | 'RoundControl'>(kind: K, value: RecordTypes[K], signer?: Signer) {
  const payload = defaultCodec().encode(kind, value);
  const headers = signer ? Object.fromEntries(Object.entries(signatureHeaders(signer, kind, value, payload)).map(([k, v]) => [k, Buffer.from(v)])) : {};
  return { payload, headers };
}

describe('the signature of docs/wire-format.md', () => {
  const ex = JSON.parse(block('json signature-example')) as Record<string, string | number>;

  it('derives the example\'s public key and key id from the RFC 8032 test vector 1 seed', () => {
    const s = signerFromSeed(String(ex.seed));
    const pub = createPublicKey(s.publicKeyPem);
    expect(rawPublicKey(pub).toString('hex')).toBe(ex.publicKey);
    expect(keyIdOf(pub)).toBe(ex.keyId);
    expect(s.keyId).toBe(ex.keyId);
  });

  it('recomputes the example\'s canonical bytes and signature, byte for byte', () => {
    const bytes = canonicalBytes('ModelUpdate', {
      tenant: String(ex.tenant), pipeline: String(ex.pipeline), nodeId: String(ex.nodeId), round: Number(ex.round), baseVersion: Number(ex.baseVersion),
      updateId: String(ex.updateId), tensorsSha256: String(ex.tensorsSha256),
    }, String(ex.payloadSha256));
    expect(bytes.toString('hex')).toBe(hexOf(block('text signature-example-bytes')));
    expect(DOC).toContain(`The canonical bytes, ${bytes.length} of them`);
    const sig = signerFromSeed(String(ex.seed)).sign(bytes);
    expect(sig.toString('hex')).toBe(hexOf(block('text signature-example-signature')));
    // Ed25519 is deterministic (RFC 8032 §5.1.6), and the signature verifies with the public key alone.
    expect(verifySignature(createPublicKey(signerFromSeed(String(ex.seed)).publicKeyPem), bytes, sig)).toBe(true);
  });

  it('documents the header names the code uses', () => {
    for (const h of Object.values(SIGNATURE_HEADERS)) expect(DOC).toContain(`\`${h}\``);
  });
});

describe('tensorsSha256', () => {
  it('is the weights SHA-256 of wire-format.md, from FLOAT32 bytes as they are or from unpacked FLOAT16 and INT8', () => {
    const w = [{ name: 'dense/kernel', shape: [2, 3], values: Float32Array.from([0.5, -1, 2, 0, -0, 3.25]) }, { name: 'b', shape: [], values: Float32Array.from([7]) }];
    expect(tensorsSha256(packTensors(w))).toBe(weightsSha256(w));
    for (const dtype of ['float16', 'int8'] as const) {
      const packed = packTensors(w, { dtype });
      expect(tensorsSha256(packed)).toBe(weightsSha256(unpackTensors(packed)));
    }
    expect(tensorsSha256([])).toBe(sha256Hex(Buffer.alloc(0)));
    const short = packTensors(w).map((t, i) => (i === 0 ? { ...t, data: t.data.subarray(0, 8) } : t));
    expect(() => tensorsSha256(short)).toThrow(FedStreamError);
  });
});

describe('canonical bytes', () => {
  const u = { tenant: 'a', pipeline: 'b', nodeId: 'c', round: 1, baseVersion: 0, updateId: 'd', tensorsSha256: '00'.repeat(32) };
  it('length-prefix every variable field: moving a character between fields changes the bytes', () => {
    const one = canonicalBytes('ModelUpdate', u, '11'.repeat(32));
    const moved = canonicalBytes('ModelUpdate', { ...u, tenant: 'ab', pipeline: '' }, '11'.repeat(32));
    expect(one.equals(moved)).toBe(false);
    expect(one.length).toBe(moved.length);
  });
  it('separate the kinds: the same tenant, pipeline and payload give other bytes for each kind', () => {
    const kinds = ['RoundControl', 'ModelVersion', 'AuditEvent'] as const;
    const all = kinds.map((k) => canonicalBytes(k, { tenant: 'a', pipeline: 'b' }, '22'.repeat(32)).toString('hex'));
    expect(new Set(all).size).toBe(3);
  });
  it('refuse values that cannot be encoded exactly', () => {
    expect(() => canonicalBytes('ModelUpdate', { ...u, round: 1.5 }, '11'.repeat(32))).toThrow(FedStreamError);
    expect(() => canonicalBytes('ModelUpdate', u, 'not hex')).toThrow(/payloadSha256/);
  });
});

describe('verifyRecord', () => {
  const team = { aggregator: ephemeralSigner(), n1: ephemeralSigner(), n2: ephemeralSigner() };
  const keys = [
    { id: 'aggregator', role: 'aggregator' as const, publicKey: team.aggregator.publicKeyPem },
    { id: 'node-1', role: 'node' as const, publicKey: team.n1.publicKeyPem },
    { id: 'node-2', role: 'node' as const, publicKey: team.n2.publicKeyPem },
  ];
  const reg = participantRegistry({ participants: { enrolment: 'registry', aggregator: 'aggregator', keys } });

  it('attributes an update to its node and a control record to the aggregator', () => {
    const u = signed('ModelUpdate', anUpdate(), team.n1);
    expect(verifyRecord(reg, 'ModelUpdate', anUpdate(), u.payload, u.headers)).toMatchObject({ ok: true, signer: { participant: 'node-1', role: 'node' } });
    expect(verifyRecord(reg, 'ModelUpdate', anUpdate(), u.payload, u.headers, { tensorsSha256: weightsSha256(W) }).ok).toBe(true);
    const c = signed('RoundControl', aControl(), team.aggregator);
    expect(verifyRecord(reg, 'RoundControl', aControl(), c.payload, c.headers)).toMatchObject({ ok: true, signer: { participant: 'aggregator' } });
  });

  it.each([
    ['unsigned', () => signed('RoundControl', aControl())],
    ['unknown_signer', () => signed('RoundControl', aControl(), ephemeralSigner())],
    ['wrong_signer', () => signed('RoundControl', aControl(), team.n1)],
  ] as const)('refuses a FINISH that is %s', (code, make) => {
    const c = make();
    const v = verifyRecord(reg, 'RoundControl', aControl(), c.payload, c.headers);
    expect(v).toMatchObject({ ok: false, code, error: { code: 'SIGNATURE_INVALID', details: { code } } });
  });

  it('refuses an update under another node\'s id, and one whose fields differ from what was signed', () => {
    const other = signed('ModelUpdate', anUpdate(), team.n2);
    expect(verifyRecord(reg, 'ModelUpdate', anUpdate(), other.payload, other.headers)).toMatchObject({ ok: false, code: 'wrong_signer' });
    const good = signed('ModelUpdate', anUpdate(), team.n1);
    const inflated = anUpdate({ numExamples: 1e9 });
    expect(verifyRecord(reg, 'ModelUpdate', inflated, defaultCodec().encode('ModelUpdate', inflated), good.headers)).toMatchObject({ ok: false, code: 'bad_signature' });
    // The decoded fields are bound too, not only the payload: a record that does not match its payload fails.
    expect(verifyRecord(reg, 'ModelUpdate', anUpdate({ round: 4 }), good.payload, good.headers)).toMatchObject({ ok: false, code: 'bad_signature' });
    const garbled = { ...good.headers, [SIGNATURE_HEADERS.signature]: Buffer.from('zz') };
    expect(verifyRecord(reg, 'ModelUpdate', anUpdate(), good.payload, garbled)).toMatchObject({ ok: false, code: 'bad_signature' });
  });

  it('does not verify what the pipeline does not ask: telemetry, and node records in open enrolment', () => {
    const open = participantRegistry({ participants: { enrolment: 'open', aggregator: 'aggregator', keys: [keys[0]!] } });
    const u = signed('ModelUpdate', anUpdate());
    expect(verifyRecord(open, 'ModelUpdate', anUpdate(), u.payload, u.headers)).toEqual({ ok: true });
    // ...but the aggregator's records still are, since its key is listed.
    const c = signed('RoundControl', aControl());
    expect(verifyRecord(open, 'RoundControl', aControl(), c.payload, c.headers)).toMatchObject({ ok: false, code: 'unsigned' });
    const bare = participantRegistry({ participants: { enrolment: 'open', aggregator: 'aggregator', keys: [] } });
    expect(verifyRecord(bare, 'RoundControl', aControl(), c.payload, c.headers)).toEqual({ ok: true });
    expect(bare.describe()).toEqual({ enrolment: 'open', nodes: 0, aggregatorKeys: 0, keys: 0 });
  });
});

describe('key rotation', () => {
  const old = ephemeralSigner();
  const next = ephemeralSigner();
  const reg = participantRegistry({
    participants: {
      enrolment: 'registry', aggregator: 'aggregator',
      keys: [
        { id: 'aggregator', role: 'aggregator', publicKey: old.publicKeyPem, validUntil: '2026-07-01T00:00:00Z' },
        { id: 'aggregator', role: 'aggregator', publicKey: next.publicKeyPem, validFrom: '2026-06-01T00:00:00Z' },
      ],
    },
  });
  const at = (iso: string, s: Signer) => {
    const c = aControl({ createdAt: Date.parse(iso) });
    const { payload, headers } = signed('RoundControl', c, s);
    return verifyRecord(reg, 'RoundControl', c, payload, headers);
  };

  it('accepts the old key before the overlap and in it, the new key in it and after it', () => {
    expect(at('2026-05-15T00:00:00Z', old).ok).toBe(true);
    expect(at('2026-06-15T00:00:00Z', old).ok).toBe(true);
    expect(at('2026-06-15T00:00:00Z', next).ok).toBe(true);
    expect(at('2026-08-01T00:00:00Z', next).ok).toBe(true);
  });

  it('refuses each key outside its window (validUntil is exclusive)', () => {
    expect(at('2026-07-01T00:00:00Z', old)).toMatchObject({ ok: false, code: 'key_not_valid' });
    expect(at('2026-05-31T23:59:59Z', next)).toMatchObject({ ok: false, code: 'key_not_valid' });
  });

  it('lets a participant start only with a key that is listed for it and valid now', () => {
    expect(() => checkOwnKey(reg, next, 'aggregator', 'aggregator', Date.parse('2026-06-15T00:00:00Z'))).not.toThrow();
    expect(() => checkOwnKey(reg, old, 'aggregator', 'aggregator', Date.parse('2026-07-02T00:00:00Z'))).toThrow(/outside its validity window/);
    expect(() => checkOwnKey(reg, ephemeralSigner(), 'aggregator', 'aggregator')).toThrow(/is not listed in the manifest's participants/);
    expect(() => checkOwnKey(reg, undefined, 'aggregator', 'aggregator')).toThrow(/--key-file/);
    expect(() => checkOwnKey(reg, next, 'node-1', 'node')).toThrow(/listed for aggregator aggregator, not for node node-1/);
  });
});

describe('the registry and its errors', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fedstream-keys-'));
  const pair = (name: string) => {
    const p = generateKeyPair();
    writeFileSync(join(dir, `${name}.pub`), p.publicKeyPem);
    writeFileSync(join(dir, `${name}.key`), p.privateKeyPem, { mode: 0o600 });
    return p;
  };

  it('reads keys from a manifest\'s keys directory and keys file, relative to the manifest', () => {
    mkdirSync(join(dir, 'keys'));
    const agg = generateKeyPair();
    const n1 = generateKeyPair();
    writeFileSync(join(dir, 'keys', 'aggregator.pub'), agg.publicKeyPem);
    writeFileSync(join(dir, 'keys', 'node-1.pub'), n1.publicKeyPem);
    writeFileSync(join(dir, 'keys', 'node-1.key'), n1.privateKeyPem, { mode: 0o600 });
    const n2 = pair('node-2');
    writeFileSync(join(dir, 'more.yaml'), `keys:\n  - { id: node-2, role: node, publicKeyFile: node-2.pub }\n`);
    writeFileSync(join(dir, 'p.yaml'), `apiVersion: fedstream/v1\ntenant: acme\nname: mnist\nmodel: { inputShape: [2], layers: [{ type: dense, units: 2 }] }\ndata: { source: mnist }\nrounds: { count: 1, targetUpdates: 1, minUpdates: 1 }\nparticipants: { keysDir: keys, keysFile: more.yaml }\n`);
    const m = loadManifest(join(dir, 'p.yaml'));
    expect(m.participants!.keysDir).toBe(join(dir, 'keys'));
    const reg = participantRegistry(m);
    expect(reg.participants('node')).toEqual(['node-1', 'node-2']);
    expect(reg.participants('aggregator')).toEqual(['aggregator']);
    expect(reg.lookup(n2.keyId)).toMatchObject({ participant: 'node-2', role: 'node' });
    // The private key files beside the public ones are never read as keys, and a node's key file loads.
    expect(reg.keys()).toHaveLength(3);
    expect(loadSigner(join(dir, 'keys', 'node-1.key')).keyId).toBe(n1.keyId);
  });

  it('says how to add keys or opt in to open enrolment when a manifest has no participants', () => {
    expect(() => participantRegistry(base)).toThrow(ConfigError);
    expect(() => participantRegistry(base)).toThrow(/participants: .*fedstream keys generate.*enrolment: open/);
  });

  it('names the field of a bad key, and never repeats a private key', () => {
    const secret = generateKeyPair().privateKeyPem;
    const withKeys = (keys: unknown[], enrolment = 'registry') => parseManifest({ ...base, participants: { enrolment, keys } }) as Manifest;
    expect(() => withKeys([{ id: 'a', role: 'aggregator', publicKey: secret }])).toThrow(/participants\.keys\[0\]\.publicKey: a private key is never accepted in a manifest/);
    try {
      withKeys([{ id: 'a', role: 'aggregator', publicKey: secret }]);
    } catch (e) {
      expect((e as Error).message).not.toContain(secret.split('\n')[1]);
    }
    expect(() => withKeys([{ id: 'a', role: 'aggregator' }])).toThrow(/participants\.keys\[0\]: give exactly one of publicKey or publicKeyFile/);
    expect(() => withKeys([{ id: 'a', role: 'boss', publicKey: 'x' }])).toThrow(/participants\.keys\[0\]\.role/);
    expect(() => withKeys([{ id: 'a', role: 'node', publicKey: 'x', validFrom: '2027-01-01T00:00:00Z', validUntil: '2026-01-01T00:00:00Z' }])).toThrow(/validUntil: validFrom must be before validUntil/);
    expect(() => participantRegistry(withKeys([{ id: 'a', role: 'aggregator', publicKey: 'not a pem' }]))).toThrow(/participants\.keys\[0\]\.publicKey: .*not a PEM public key/);
    const rsa = String(createPublicKey(createPrivateKey({ key: generateRsa(), format: 'pem' })).export({ format: 'pem', type: 'spki' }));
    expect(() => participantRegistry(withKeys([{ id: 'a', role: 'aggregator', publicKey: rsa }]))).toThrow(/a rsa key; FedStream signs with Ed25519 keys/);
    expect(() => participantRegistry(withKeys([{ id: 'n', role: 'node', publicKeyFile: join(dir, 'nope.pub') }]))).toThrow(/participants\.keys\[0\]\.publicKeyFile: public key file .* does not exist/);
    expect(() => participantRegistry(withKeys([{ id: 'n', role: 'node', publicKey: ephemeralSigner().publicKeyPem }]))).toThrow(/no aggregator key is listed/);
    const k = ephemeralSigner().publicKeyPem;
    expect(() => participantRegistry(withKeys([{ id: 'aggregator', role: 'aggregator', publicKey: k }, { id: 'node-1', role: 'node', publicKey: k }]))).toThrow(/one key belongs to one participant/);
  });

  it('refuses a private key file that others may read, and a file that is not a private key', () => {
    const p = pair('loose');
    chmodSync(join(dir, 'loose.key'), 0o644);
    expect(() => loadSigner(join(dir, 'loose.key'))).toThrow(/readable by others .*chmod 600/);
    chmodSync(join(dir, 'loose.key'), 0o600);
    expect(loadSigner(join(dir, 'loose.key')).keyId).toBe(p.keyId);
    chmodSync(join(dir, 'loose.pub'), 0o600);
    expect(() => loadSigner(join(dir, 'loose.pub'))).toThrow(expect.objectContaining({ code: 'KEY_INVALID', message: expect.stringMatching(/not a PEM private key/) }));
    expect(() => loadSigner(join(dir, 'missing.key'))).toThrow(/cannot be read: ENOENT/);
    // A signer shows its key id, never its key.
    expect(JSON.stringify(loadSigner(join(dir, 'loose.key')))).toBe(JSON.stringify({ keyId: p.keyId }));
  });

  it('keeps the widest window when the same key is listed twice for one participant', () => {
    const s = ephemeralSigner();
    const reg = new ParticipantRegistry('registry', [
      { participant: 'aggregator', role: 'aggregator', keyId: s.keyId, publicKey: createPublicKey(s.publicKeyPem), validFrom: 10, validUntil: 20, source: 'a' },
      { participant: 'aggregator', role: 'aggregator', keyId: s.keyId, publicKey: createPublicKey(s.publicKeyPem), validFrom: 5, validUntil: 15, source: 'b' },
    ]);
    expect(reg.lookup(s.keyId)).toMatchObject({ validFrom: 5, validUntil: 20 });
    expect(sha256Hex(Buffer.alloc(0))).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  });
});

/** A small RSA key, only to be refused as not Ed25519. */
function generateRsa(): string {
  return String(generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ format: 'pem', type: 'pkcs8' }));
}
