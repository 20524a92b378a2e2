/**
 * The participant registry: the public keys that may speak for a pipeline (the manifest's `participants` section,
 * with the keys file and directory it names), and the one verification every reader runs before it acts on a
 * record (DESIGN.md invariant 6). Nodes verify control and versions, the aggregator verifies updates and, on
 * recovery, its own versions and control, the sink verifies all four kinds.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { KeyObject } from 'node:crypto';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import type { RecordKind, RecordTypes } from '../codec/index.ts';
import { ConfigError, FedStreamError, isFedStreamError } from '../common/index.ts';
import { participantKeySchema, type Manifest, type ParticipantKeySpec } from '../config/index.ts';
import {
  SIGNATURE_HEADERS, SIGNER_ROLE, bindingOf, canonicalBytes, ephemeralSigner, isSignedKind, keyIdOf, publicKeyFromPem, sha256Hex, verifySignature,
  type ParticipantRole, type Signer,
} from './signing.ts';

/** One public key of the registry. Times are ms since the epoch. */
export interface RegisteredKey {
  participant: string;
  role: ParticipantRole;
  keyId: string;
  publicKey: KeyObject;
  validFrom?: number;
  validUntil?: number;
  /** Where it was listed, for messages: `participants.keys[2]`, a file path. */
  source: string;
}

export type Enrolment = 'registry' | 'open';

/** Why a record is not attributed: the rejection codes of audit events, dead letters and `rejected_updates`. */
export const VERDICT_CODES = ['unsigned', 'unknown_signer', 'wrong_signer', 'key_not_valid', 'bad_signature'] as const;
export type VerdictCode = (typeof VERDICT_CODES)[number];

export type Verdict =
  /** Attributed to `signer`; or, without one, accepted unverified (open enrolment, or no aggregator key listed in it). */
  | { ok: true; signer?: RegisteredKey }
  | { ok: false; code: VerdictCode; reason: string; error: FedStreamError };

/** The keys of one pipeline, by key id. */
export class ParticipantRegistry {
  private readonly byId = new Map<string, RegisteredKey>();

  constructor(readonly enrolment: Enrolment, keys: readonly RegisteredKey[], readonly aggregatorId = 'aggregator') {
    for (const k of keys) {
      const had = this.byId.get(k.keyId);
      if (had && (had.participant !== k.participant || had.role !== k.role)) {
        throw new ConfigError('participants', `key ${k.keyId} (${k.source}) is listed for ${had.role} ${had.participant} (${had.source}) and for ${k.role} ${k.participant}; one key belongs to one participant`);
      }
      // The same key listed twice (a rotation entry repeated): the widest window wins.
      this.byId.set(k.keyId, had ? { ...had, validFrom: minOf(had.validFrom, k.validFrom), validUntil: maxOf(had.validUntil, k.validUntil) } : k);
    }
  }

  /** Every key, in no particular order. */
  keys(): RegisteredKey[] {
    return [...this.byId.values()];
  }

  lookup(keyId: string): RegisteredKey | undefined {
    return this.byId.get(keyId);
  }

  /** The participants of a role, sorted. */
  participants(role: ParticipantRole): string[] {
    return [...new Set(this.keys().filter((k) => k.role === role).map((k) => k.participant))].sort();
  }

  /** True when records of `kind` must be signed and verified: node records unless enrolment is open; aggregator records whenever an aggregator key is listed. */
  verifies(kind: RecordKind): boolean {
    const role = SIGNER_ROLE[kind];
    if (role === 'node') return this.enrolment === 'registry';
    if (role === 'aggregator') return this.enrolment === 'registry' || this.participants('aggregator').length > 0;
    return false;
  }

  /** What the registry holds, for logs and the compliance report (no key material). */
  describe(): { enrolment: Enrolment; nodes: number; aggregatorKeys: number; keys: number } {
    return { enrolment: this.enrolment, nodes: this.participants('node').length, aggregatorKeys: this.keys().filter((k) => k.role === 'aggregator').length, keys: this.byId.size };
  }
}

function minOf(a?: number, b?: number): number | undefined {
  return a === undefined || b === undefined ? undefined : Math.min(a, b);
}
function maxOf(a?: number, b?: number): number | undefined {
  return a === undefined || b === undefined ? undefined : Math.max(a, b);
}

/** What to write when a pipeline has no participants section: how to add keys, or how to opt in to open enrolment. */
export const NO_PARTICIPANTS_HELP =
  'the pipeline lists no participants, so nobody could verify who wrote its records. Generate keys with ' +
  '`fedstream keys generate --role aggregator --out keys` and `fedstream keys generate --role node --id <node-id> --out keys`, then add ' +
  '`participants: { keysDir: keys }` to the manifest; or, to let any node join without keys, opt in explicitly with ' +
  '`participants: { enrolment: open }` (reported as such in the compliance report). docs/security.md, "Signatures"';

/**
 * The registry of a manifest's `participants` section: inline keys, the keys file and the keys directory it names.
 * Throws ConfigError (field path, never key material) when the section is missing, a key is unreadable or not an
 * Ed25519 public key, or (enrolment `registry`) no aggregator key is listed.
 */
export function participantRegistry(m: Pick<Manifest, 'participants'>): ParticipantRegistry {
  const p = m.participants;
  if (!p) throw new ConfigError('participants', NO_PARTICIPANTS_HELP);
  const keys: RegisteredKey[] = [];
  p.keys.forEach((k, i) => keys.push(registered(k, `participants.keys[${i}]`)));
  if (p.keysFile) keys.push(...keysFromFile(p.keysFile));
  if (p.keysDir) keys.push(...keysFromDir(p.keysDir, p.aggregator));
  const reg = new ParticipantRegistry(p.enrolment, keys, p.aggregator);
  if (p.enrolment === 'registry' && reg.participants('aggregator').length === 0) {
    throw new ConfigError('participants', 'no aggregator key is listed: nodes could not verify control and model versions. Add one (fedstream keys generate --role aggregator), or set enrolment: open');
  }
  return reg;
}

function registered(k: ParticipantKeySpec, where: string): RegisteredKey {
  let pem: string;
  if (k.publicKey !== undefined) pem = k.publicKey;
  else {
    const file = k.publicKeyFile!;
    if (!existsSync(file)) throw new ConfigError(`${where}.publicKeyFile`, `public key file ${file} does not exist`);
    pem = readFileSync(file, 'utf8');
  }
  const publicKey = keyOrConfigError(pem, k.publicKey !== undefined ? `${where}.publicKey` : `${where}.publicKeyFile`, k.publicKeyFile ?? where);
  return {
    participant: k.id,
    role: k.role,
    keyId: keyIdOf(publicKey),
    publicKey,
    ...(k.validFrom ? { validFrom: Date.parse(k.validFrom) } : {}),
    ...(k.validUntil ? { validUntil: Date.parse(k.validUntil) } : {}),
    source: k.publicKeyFile ?? where,
  };
}

function keyOrConfigError(pem: string, path: string, source: string): KeyObject {
  try {
    return publicKeyFromPem(pem, source);
  } catch (err) {
    if (isFedStreamError(err)) throw new ConfigError(path, err.message, { cause: err });
    throw err;
  }
}

const keysFileSchema = z.object({ keys: z.array(participantKeySchema) }).strict();

function keysFromFile(file: string): RegisteredKey[] {
  if (!existsSync(file)) throw new ConfigError('participants.keysFile', `keys file ${file} does not exist`);
  const doc = parseDocument(readFileSync(file, 'utf8'));
  if (doc.errors.length > 0) throw new ConfigError('participants.keysFile', `${file}: YAML syntax error: ${doc.errors[0]!.message.split('\n')[0]}`);
  const r = keysFileSchema.safeParse(doc.toJS());
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw new ConfigError(`participants.keysFile ${file}: ${i.path.map(String).join('.') || '(root)'}`, i.code === 'unrecognized_keys' ? 'unknown key' : i.message);
  }
  return r.data.keys.map((k, i) => registered(k.publicKeyFile === undefined ? k : { ...k, publicKeyFile: join(file, '..', k.publicKeyFile) }, `${file}: keys[${i}]`));
}

function keysFromDir(dir: string, aggregatorId: string): RegisteredKey[] {
  if (!existsSync(dir)) throw new ConfigError('participants.keysDir', `keys directory ${dir} does not exist: make the pipeline's keys into it with \`fedstream keys generate --role aggregator --out ${dir}\` and \`fedstream keys generate --role node --id <node-id> --out ${dir}\` (docs/security.md, "Signatures")`);
  return readdirSync(dir).filter((f) => f.endsWith('.pub')).sort().map((f) => {
    const file = join(dir, f);
    const id = f.slice(0, -'.pub'.length);
    const publicKey = keyOrConfigError(readFileSync(file, 'utf8'), 'participants.keysDir', file);
    return { participant: id, role: id === aggregatorId ? 'aggregator' : 'node', keyId: keyIdOf(publicKey), publicKey, source: file } satisfies RegisteredKey;
  });
}

/**
 * Checks that `signer` may speak for `participant` in `role` at `now` (ms since the epoch): its key is listed for
 * them and valid now. Without a signer, fine only when the registry does not verify that role (open enrolment for
 * nodes). Throws ConfigError saying how to fix it.
 */
export function checkOwnKey(reg: ParticipantRegistry, signer: Signer | undefined, participant: string, role: ParticipantRole, now = Date.now()): void {
  const needed = role === 'node' ? reg.verifies('ModelUpdate') : reg.verifies('RoundControl');
  if (!signer) {
    if (needed) throw new ConfigError('participants', `${role} ${participant} has no private key: pass --key-file (or FEDSTREAM_KEY_FILE) with the key whose public half the manifest lists for it (fedstream keys generate)`);
    return;
  }
  const k = reg.lookup(signer.keyId);
  if (!k) {
    if (!needed) return;
    throw new ConfigError('participants', `the key file's key ${signer.keyId} is not listed in the manifest's participants; add its public key for ${role} ${participant}`);
  }
  if (k.role !== role || k.participant !== participant) {
    throw new ConfigError('participants', `the key file's key ${signer.keyId} is listed for ${k.role} ${k.participant}, not for ${role} ${participant}`);
  }
  if (!inWindow(k, now)) throw new ConfigError('participants', `the key file's key ${signer.keyId} is outside its validity window (${windowText(k)}); use the current key`);
}

function inWindow(k: RegisteredKey, at: number): boolean {
  return (k.validFrom === undefined || at >= k.validFrom) && (k.validUntil === undefined || at < k.validUntil);
}

function windowText(k: RegisteredKey): string {
  const t = (ms?: number) => (ms === undefined ? '…' : new Date(ms).toISOString());
  return `${t(k.validFrom)} to ${t(k.validUntil)}`;
}

/** The record's own time, the one a key's validity window is checked against (ms since the epoch). */
function recordTime(kind: RecordKind, value: unknown): number {
  const v = value as { createdAt?: number; eventTime?: number };
  return Number(kind === 'AuditEvent' ? v.eventTime : v.createdAt);
}

function header(headers: Record<string, Buffer | string | undefined> | undefined, name: string): string | undefined {
  const v = headers?.[name];
  if (v === undefined || v === null) return undefined;
  return typeof v === 'string' ? v : Buffer.from(v).toString('utf8');
}

export interface VerifyOptions {
  /** A ModelUpdate's weights SHA-256, when the reader already has its weights unpacked (saves unpacking them again). */
  tensorsSha256?: string;
}

/**
 * Verifies a decoded record against the registry: its signature headers, the signer's role and (for an update)
 * node id, the key's validity window at the record's own time, and the Ed25519 signature over the canonical bytes
 * of `payload` (the encoded record; RFC 8032 §5.1.7). Never throws: a record that is not attributed comes back
 * with a code and a sentence a person can read. TelemetryEvent is not signed and always passes.
 */
export function verifyRecord<K extends RecordKind>(
  reg: ParticipantRegistry,
  kind: K,
  value: RecordTypes[K],
  payload: Uint8Array,
  headers: Record<string, Buffer | string | undefined> | undefined,
  o: VerifyOptions = {},
): Verdict {
  if (!isSignedKind(kind) || !reg.verifies(kind)) return { ok: true };
  const role = SIGNER_ROLE[kind]!;
  const who = kind === 'ModelUpdate' ? `update ${(value as RecordTypes['ModelUpdate']).updateId} of node ${(value as RecordTypes['ModelUpdate']).nodeId}` : `${kind} record`;
  const fail = (code: VerdictCode, reason: string): Verdict => ({ ok: false, code, reason, error: new FedStreamError('SIGNATURE_INVALID', reason, { details: { code, kind } }) });
  const sig = header(headers, SIGNATURE_HEADERS.signature);
  const keyId = header(headers, SIGNATURE_HEADERS.keyId);
  if (!sig || !keyId) return fail('unsigned', `${who} carries no signature (headers ${SIGNATURE_HEADERS.signature}, ${SIGNATURE_HEADERS.keyId}); a ${role}'s signature is required`);
  const k = reg.lookup(keyId);
  if (!k) return fail('unknown_signer', `${who} is signed by key ${keyId.slice(0, 64)}, which no participant of this pipeline holds`);
  if (k.role !== role) return fail('wrong_signer', `${who} is signed by ${k.role} ${k.participant}'s key; only the ${role} signs a ${kind}`);
  if (kind === 'ModelUpdate' && k.participant !== (value as RecordTypes['ModelUpdate']).nodeId) {
    return fail('wrong_signer', `${who} is signed by node ${k.participant}'s key: a node speaks only for itself`);
  }
  const at = recordTime(kind, value);
  if (!inWindow(k, at)) return fail('key_not_valid', `${who} was made at ${Number.isFinite(at) ? new Date(at).toISOString() : at}, outside the validity window of key ${keyId} (${windowText(k)})`);
  let data: Buffer;
  try {
    data = canonicalBytes(kind, bindingOf(kind, value as RecordTypes[typeof kind], o.tensorsSha256), sha256Hex(payload));
  } catch (err) {
    return fail('bad_signature', `${who}: its canonical bytes cannot be formed: ${(err as Error).message}`);
  }
  if (!/^[0-9a-f]{128}$/.test(sig) || !verifySignature(k.publicKey, data, Buffer.from(sig, 'hex'))) {
    return fail('bad_signature', `${who}: the signature does not verify with ${k.role} ${k.participant}'s key ${keyId}`);
  }
  return { ok: true, signer: k };
}

/** A pipeline's participants made up in this process: the demo's and the tests' ephemeral keys. */
export interface EphemeralParticipants<M extends Pick<Manifest, 'participants'>> {
  /** The manifest with a `participants` section listing every public key (enrolment `registry`). */
  manifest: M;
  registry: ParticipantRegistry;
  /** The signer of a participant (a node id, or the aggregator's id), or undefined for one not made here. */
  signerFor(participant: string): Signer | undefined;
}

/**
 * Fresh Ed25519 keys for the aggregator (`aggregatorId`) and each node, held in memory only, with the manifest that
 * lists their public keys. For runs that live and die in one process (the demo, tests); a pipeline that outlives
 * its process needs key files (`fedstream keys generate`).
 */
export function ephemeralParticipants<M extends Pick<Manifest, 'participants'>>(m: M, nodeIds: readonly string[], aggregatorId = 'aggregator'): EphemeralParticipants<M> {
  const signers = new Map<string, Signer>([[aggregatorId, ephemeralSigner()], ...nodeIds.map((id) => [id, ephemeralSigner()] as const)]);
  const keys = [...signers].map(([id, s]) => ({ id, role: (id === aggregatorId ? 'aggregator' : 'node') as ParticipantRole, publicKey: s.publicKeyPem }));
  const manifest = { ...m, participants: { enrolment: 'registry' as const, aggregator: aggregatorId, keys } };
  return { manifest, registry: participantRegistry(manifest), signerFor: (id) => signers.get(id) };
}
