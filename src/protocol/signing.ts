/**
 * Who said it (DESIGN.md, trust model, layer 2): Ed25519 signatures (RFC 8032, "pure" Ed25519, no pre-hash) over a
 * canonical byte string per record, with node:crypto only. docs/wire-format.md ("Signatures") specifies the bytes
 * field by field, so that a node in another language can produce them; a unit test recomputes its example.
 *
 * The canonical byte string of a record (version 1):
 *
 * ```
 * str(s)  = u32 LE byte length of UTF-8(s) || UTF-8(s)          every variable field is length-prefixed
 * i64(n)  = signed 64-bit little-endian integer
 * sha(x)  = the 32 raw bytes of a SHA-256
 *
 * ModelUpdate:  str("fedstream-sig/v1") str("ModelUpdate") str(tenant) str(pipeline) str(nodeId) i64(round)
 *               i64(baseVersion) str(updateId) sha(tensors: the weights SHA-256 of wire-format.md) sha(payload)
 * RoundControl, ModelVersion, AuditEvent:
 *               str("fedstream-sig/v1") str(kind) str(tenant) str(pipeline) sha(payload)
 * ```
 *
 * `payload` is the whole encoded record (the Avro single-object bytes, before chunking): its hash binds every field
 * a reader acts on (numExamples, metrics, contributors...), and the named fields make the binding explicit. The
 * version tag and the kind separate the domains: a signature over one kind never verifies as another.
 *
 * The signature and the signer's key id travel in Kafka headers ({@link SIGNATURE_HEADERS}), on every chunk of a
 * chunked payload.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { weightsSha256, unpackTensors, type RecordKind, type RecordTypes, type TensorRecord } from '../codec/index.ts';
import { FedStreamError } from '../common/index.ts';

/** The version tag that starts every canonical byte string. */
export const SIGNATURE_VERSION = 'fedstream-sig/v1';

/** Kafka headers of a signed record (UTF-8 strings). */
export const SIGNATURE_HEADERS = {
  /** The 64-byte Ed25519 signature, lowercase hex (128 characters). */
  signature: 'fedstream-signature',
  /** The signer's key id ({@link keyIdOf}): 32 lowercase hex characters. */
  keyId: 'fedstream-key-id',
} as const;

/** The roles a key may have: a node signs updates, the aggregator signs control, versions and audit. */
export const PARTICIPANT_ROLES = ['node', 'aggregator'] as const;
export type ParticipantRole = (typeof PARTICIPANT_ROLES)[number];

/** The role whose key must sign each record kind (TelemetryEvent is not signed). */
export const SIGNER_ROLE: Readonly<Partial<Record<RecordKind, ParticipantRole>>> = {
  ModelUpdate: 'node',
  RoundControl: 'aggregator',
  ModelVersion: 'aggregator',
  AuditEvent: 'aggregator',
};

/** The record kinds that carry a signature. */
export type SignedKind = 'ModelUpdate' | 'RoundControl' | 'ModelVersion' | 'AuditEvent';

export function isSignedKind(kind: RecordKind): kind is SignedKind {
  return SIGNER_ROLE[kind] !== undefined;
}

/** A private key that signs; it never leaves this object (no getter, and `toJSON` shows the key id only). */
export interface Signer {
  /** {@link keyIdOf} the public key. */
  readonly keyId: string;
  /** The public key, SPKI PEM. */
  readonly publicKeyPem: string;
  /** Ed25519 signature (64 bytes) of `data`. */
  sign(data: Uint8Array): Buffer;
}

/**
 * The key id of an Ed25519 public key: the first 16 bytes of the SHA-256 of its 32 raw bytes (RFC 8032 §5.1.5
 * encoding), lowercase hex (32 characters).
 */
export function keyIdOf(publicKey: KeyObject): string {
  return createHash('sha256').update(rawPublicKey(publicKey)).digest('hex').slice(0, 32);
}

/** The 32 raw bytes of an Ed25519 public key (RFC 8032 §5.1.5). */
export function rawPublicKey(publicKey: KeyObject): Buffer {
  const jwk = publicKey.export({ format: 'jwk' });
  return Buffer.from(String(jwk.x), 'base64url');
}

/**
 * An Ed25519 public key from SPKI PEM. Throws KEY_INVALID (naming `source`, never the text) when it is not one;
 * a private key given where a public one belongs is refused outright.
 */
export function publicKeyFromPem(pem: string, source: string): KeyObject {
  if (/PRIVATE KEY/.test(pem)) throw new FedStreamError('KEY_INVALID', `${source}: holds a private key where a public key belongs; private keys are read from key files only (--key-file)`);
  let key: KeyObject;
  try {
    key = createPublicKey({ key: pem, format: 'pem' });
  } catch (err) {
    throw new FedStreamError('KEY_INVALID', `${source}: not a PEM public key (SPKI, "-----BEGIN PUBLIC KEY-----"): ${(err as Error).message}`, { cause: err });
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new FedStreamError('KEY_INVALID', `${source}: a ${key.asymmetricKeyType} key; FedStream signs with Ed25519 keys (fedstream keys generate)`);
  return key;
}

/** A signer from a PKCS#8 PEM private key. Throws KEY_INVALID naming `source`; the key text never reaches a message. */
export function signerFromPem(pem: string, source: string): Signer {
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: pem, format: 'pem' });
  } catch {
    throw new FedStreamError('KEY_INVALID', `${source}: not a PEM private key (PKCS#8, "-----BEGIN PRIVATE KEY-----")`);
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new FedStreamError('KEY_INVALID', `${source}: a ${key.asymmetricKeyType} key; FedStream signs with Ed25519 keys (fedstream keys generate)`);
  return signerOf(key);
}

function signerOf(key: KeyObject): Signer {
  const pub = createPublicKey(key);
  const keyId = keyIdOf(pub);
  const publicKeyPem = String(pub.export({ format: 'pem', type: 'spki' }));
  return Object.freeze({
    keyId,
    publicKeyPem,
    sign: (data: Uint8Array) => sign(null, data, key),
    toJSON: () => ({ keyId }),
  });
}

/**
 * The signer of a private key file (PKCS#8 PEM). Refuses a file that others may read (mode bits for group or other
 * set) on POSIX systems, as ssh does. Throws KEY_INVALID naming the file.
 */
export function loadSigner(file: string): Signer {
  let text: string;
  try {
    const st = statSync(file);
    if (process.platform !== 'win32' && (st.mode & 0o077) !== 0) {
      throw new FedStreamError('KEY_INVALID', `private key file ${file} is readable by others (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it`);
    }
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if (err instanceof FedStreamError) throw err;
    throw new FedStreamError('KEY_INVALID', `private key file ${file} cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
  }
  return signerFromPem(text, `private key file ${file}`);
}

/** A new Ed25519 key pair as PEM (PKCS#8 private, SPKI public), with its key id. */
export function generateKeyPair(): { privateKeyPem: string; publicKeyPem: string; keyId: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    privateKeyPem: String(privateKey.export({ format: 'pem', type: 'pkcs8' })),
    publicKeyPem: String(publicKey.export({ format: 'pem', type: 'spki' })),
    keyId: keyIdOf(publicKey),
  };
}

/** An in-memory signer with a fresh key (the demo's and the tests' ephemeral participants). */
export function ephemeralSigner(): Signer {
  return signerOf(generateKeyPairSync('ed25519').privateKey);
}

// ------------------------------------------------------------------------------------------------ canonical bytes

/** What the canonical bytes of a ModelUpdate bind, besides the payload hash. */
export interface UpdateBinding {
  tenant: string;
  pipeline: string;
  nodeId: string;
  round: number;
  baseVersion: number;
  updateId: string;
  /** The weights SHA-256 of the update's tensors (docs/wire-format.md, "Weights SHA-256"), 64 hex digits. */
  tensorsSha256: string;
}

/** What the canonical bytes of a control, version or audit record bind, besides the payload hash. */
export interface RecordBinding {
  tenant: string;
  pipeline: string;
}

function str(s: string): Buffer {
  const b = Buffer.from(s, 'utf8');
  const len = Buffer.allocUnsafe(4);
  len.writeUInt32LE(b.length, 0);
  return Buffer.concat([len, b]);
}

function i64(n: number): Buffer {
  if (!Number.isSafeInteger(n)) throw new FedStreamError('SIGNATURE_INVALID', `cannot sign ${n}: not an integer within ±(2^53 − 1)`);
  const b = Buffer.allocUnsafe(8);
  b.writeBigInt64LE(BigInt(n), 0);
  return b;
}

function sha(hex: string, what: string): Buffer {
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new FedStreamError('SIGNATURE_INVALID', `${what} is not 64 lowercase hex digits`);
  return Buffer.from(hex, 'hex');
}

/** SHA-256 of bytes, lowercase hex. */
export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * The canonical byte string that is signed for a record (see the file comment and docs/wire-format.md).
 * `payloadSha256` is the SHA-256 of the encoded record, hex. Throws SIGNATURE_INVALID for a value that cannot be
 * encoded (a non-integer round, a malformed hash).
 */
export function canonicalBytes(kind: 'ModelUpdate', b: UpdateBinding, payloadSha256: string): Buffer;
export function canonicalBytes(kind: Exclude<SignedKind, 'ModelUpdate'>, b: RecordBinding, payloadSha256: string): Buffer;
export function canonicalBytes(kind: SignedKind, b: UpdateBinding | RecordBinding, payloadSha256: string): Buffer;
export function canonicalBytes(kind: SignedKind, b: UpdateBinding | RecordBinding, payloadSha256: string): Buffer {
  const parts = [str(SIGNATURE_VERSION), str(kind), str(b.tenant), str(b.pipeline)];
  if (kind === 'ModelUpdate') {
    const u = b as UpdateBinding;
    parts.push(str(u.nodeId), i64(u.round), i64(u.baseVersion), str(u.updateId), sha(u.tensorsSha256, 'tensorsSha256'));
  }
  parts.push(sha(payloadSha256, 'payloadSha256'));
  return Buffer.concat(parts);
}

/**
 * The weights SHA-256 (docs/wire-format.md, "Weights SHA-256") of tensor records, hex. FLOAT32 tensors are hashed
 * from their bytes as they are (the hash is defined over float32 little-endian values, which they are): no copy of
 * the weights, so a reader that keeps only metadata (the sink) verifies an update without unpacking it. Other
 * dtypes are unpacked first. Throws CodecError for a tensor that cannot be unpacked.
 */
export function tensorsSha256(tensors: readonly TensorRecord[]): string {
  const direct = tensors.every((t) => t.dtype === 'FLOAT32' && Buffer.isBuffer(t.data) && t.data.length === 4 * t.shape.reduce((a, d) => a * Number(d), 1));
  if (!direct) return weightsSha256(unpackTensors(tensors));
  const h = createHash('sha256');
  const names = new Set<string>();
  for (const t of tensors) {
    // Names must be unique, as unpacking requires; a repeated one takes the checked path (and its error).
    if (names.has(t.name)) return weightsSha256(unpackTensors(tensors));
    names.add(t.name);
    const name = Buffer.from(t.name, 'utf8');
    const head = Buffer.allocUnsafe(8 + name.length + 4 * t.shape.length);
    head.writeUInt32LE(name.length, 0);
    name.copy(head, 4);
    head.writeUInt32LE(t.shape.length, 4 + name.length);
    t.shape.forEach((d, i) => head.writeUInt32LE(Number(d), 8 + name.length + 4 * i));
    h.update(head).update(t.data);
  }
  return h.digest('hex');
}

/**
 * The binding of a decoded record. For a ModelUpdate, `tensorsSha256` is computed from its tensors unless given
 * (the aggregator passes the hash of the weights it already unpacked).
 */
export function bindingOf<K extends SignedKind>(kind: K, value: RecordTypes[K], given?: string): UpdateBinding | RecordBinding {
  if (kind === 'ModelUpdate') {
    const u = value as RecordTypes['ModelUpdate'];
    return {
      tenant: u.tenant, pipeline: u.pipeline, nodeId: u.nodeId, round: Number(u.round), baseVersion: Number(u.baseVersion), updateId: u.updateId,
      tensorsSha256: given ?? tensorsSha256(u.tensors),
    };
  }
  const r = value as { tenant: string; pipeline: string };
  return { tenant: r.tenant, pipeline: r.pipeline };
}

/** The signature headers of an encoded record: Ed25519 over its canonical bytes, by `signer`. */
export function signatureHeaders<K extends SignedKind>(signer: Signer, kind: K, value: RecordTypes[K], payload: Uint8Array): Record<string, string> {
  const bytes = canonicalBytes(kind, bindingOf(kind, value), sha256Hex(payload));
  return { [SIGNATURE_HEADERS.signature]: signer.sign(bytes).toString('hex'), [SIGNATURE_HEADERS.keyId]: signer.keyId };
}

/** Ed25519 verification of `signature` over `data` with `publicKey` (RFC 8032 §5.1.7); false for any malformed input. */
export function verifySignature(publicKey: KeyObject, data: Uint8Array, signature: Uint8Array): boolean {
  if (signature.length !== 64) return false;
  try {
    return verify(null, data, publicKey, signature);
  } catch {
    return false;
  }
}
