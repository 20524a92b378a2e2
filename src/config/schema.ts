import { z } from 'zod';
import { privacySchema } from './privacy.ts';
import { CHUNK_SIZE_BOUNDS, DEFAULTS, LIMIT_DEFAULTS, TOPIC_KINDS } from './defaults.ts';

/**
 * The pipeline manifest's schema (zod), section by section, and the types inferred from it. Every object is
 * `.strict()`: an unknown key is an error. Loading, legacy-key migration and path resolution are in manifest.ts.
 */

const id = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'expected lowercase letters, digits, "-" or "_" (1-63 chars, starting with a letter or digit)');
const posInt = z.number().int().positive();
const nonNegInt = z.number().int().nonnegative();
const activation = z.enum(['relu', 'softmax', 'sigmoid', 'tanh', 'linear', 'elu', 'selu']);

const layer = z.discriminatedUnion('type', [
  z.object({ type: z.literal('dense'), units: posInt, activation: activation.default('linear') }).strict(),
  z.object({
    type: z.literal('conv2d'),
    filters: posInt,
    kernelSize: posInt,
    strides: posInt.default(1),
    padding: z.enum(['valid', 'same']).default('same'),
    activation: activation.default('relu'),
  }).strict(),
  z.object({ type: z.literal('maxPooling2d'), poolSize: posInt.default(2), strides: posInt.optional() }).strict(),
  z.object({ type: z.literal('flatten') }).strict(),
  z.object({ type: z.literal('dropout'), rate: z.number().min(0).max(1) }).strict(),
]);

export const modelSchema = z.object({
  /** Shape of one example, without the batch dimension: [784] for an MLP on MNIST, [28, 28, 1] for a CNN. */
  inputShape: z.array(posInt).min(1).max(3),
  layers: z.array(layer).min(1),
  /** Seed of the initial weights (version 0). */
  seed: nonNegInt.default(1),
}).strict();

const mnistData = z.object({
  source: z.literal('mnist'),
  /** Number of nodes the digits are split across. */
  nodes: posInt.default(10),
  /** `iid`: shuffled and split evenly. `shards`: sorted by label, cut into shards, `shardsPerNode` each (McMahan et al. 2017). */
  partition: z.enum(['iid', 'shards']).default('shards'),
  shardsPerNode: posInt.default(2),
  /** Digits held out for evaluation (from the same 10,000). */
  testExamples: posInt.default(1000),
  /** Digits used for training, split across nodes (at most 10,000 - testExamples). */
  trainExamples: posInt.optional(),
  seed: nonNegInt.default(42),
}).strict();

const fileData = z.object({
  source: z.literal('file'),
  /** A CSV or JSON file per node; `{nodeId}` is replaced by the node id. See docs/node-data.md. */
  path: z.string().min(1),
  /** Optional held-out file the aggregator evaluates each version on. */
  testPath: z.string().min(1).optional(),
  numClasses: posInt,
}).strict();

/** Where a secret is: a file to read it from, or an environment variable that holds it. */
const secretRefSchema = z.object({
  /** A file holding the secret (one trailing newline ignored); relative paths resolve against the working directory. */
  file: z.string().min(1).optional(),
  /** The name of an environment variable holding the secret. */
  env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected an environment variable name').optional(),
}).strict().refine((r) => (r.file === undefined) !== (r.env === undefined), { message: 'give exactly one of file or env' });

export type SecretRef = z.infer<typeof secretRefSchema>;

/**
 * A secret is named, never written: `password: { file: /run/secrets/kafka }` or `password: { env: KAFKA_PASSWORD }`.
 * A value written in place (`password: hunter2`) is refused with the reason, so that no manifest in a repository
 * ever carries one, and the value itself never reaches an error message.
 */
const secret = (key: string) => z.unknown().transform((v, ctx): SecretRef => {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    ctx.addIssue({ code: 'custom', message: `secrets are not accepted inline; write ${key}: { file: PATH } or ${key}: { env: VARIABLE }` });
    return z.NEVER;
  }
  const r = secretRefSchema.safeParse(v);
  if (!r.success) {
    for (const i of r.error.issues) ctx.addIssue({ code: 'custom', message: i.code === 'unrecognized_keys' ? `unknown key (${(i as { keys: string[] }).keys.join(', ')})` : i.message, path: i.path as PropertyKey[] });
    return z.NEVER;
  }
  return r.data;
});

export const kafkaSecuritySchema = z.object({
  /** TLS to the brokers, with hostname verification always on. */
  tls: z.object({
    /** PEM file of the CA(s) to trust; default: the system's trust store. */
    ca: z.string().min(1).optional(),
    /** PEM client certificate and key, for mutual TLS. */
    cert: z.string().min(1).optional(),
    key: z.string().min(1).optional(),
    /** Passphrase of an encrypted client key. */
    keyPassword: secret('keyPassword').optional(),
  }).strict().refine((t) => (t.cert === undefined) === (t.key === undefined), { message: 'give cert and key together', path: ['cert'] }).optional(),
  sasl: z.discriminatedUnion('mechanism', [
    z.object({ mechanism: z.enum(['scram-sha-256', 'scram-sha-512', 'plain']), username: z.string().min(1), password: secret('password') }).strict(),
    /** OAUTHBEARER: the token comes from a program's token provider (createTransport option) or from a secret. */
    z.object({ mechanism: z.literal('oauthbearer'), token: secret('token').optional() }).strict(),
  ]).optional(),
}).strict().refine((s) => !(s.sasl?.mechanism === 'plain' && !s.tls), { message: 'SASL PLAIN sends the password as it is: it is allowed over TLS only (add tls)', path: ['sasl', 'mechanism'] });

export type KafkaSecurity = z.infer<typeof kafkaSecuritySchema>;

/** The `limits` section; defaults in LIMIT_DEFAULTS (config/defaults.ts). */
export const limitsSchema = z.object({
  /** Updates whose L2 distance from the base version exceeds this are rejected (`norm_bound`). */
  maxUpdateNorm: z.number().positive().default(LIMIT_DEFAULTS.maxUpdateNorm),
  /** Updates claiming more examples than this are rejected (`bad_num_examples`). */
  maxExamplesPerUpdate: posInt.max(Number.MAX_SAFE_INTEGER).default(LIMIT_DEFAULTS.maxExamplesPerUpdate),
  /**
   * Optional: the largest share of a round's total weight one update may have, in [0.5, 1]. A larger weight is
   * clamped to exactly this share (FedAvg), and the ROUND_CLOSED audit event says whose. Below 0.5 several updates
   * could exceed the share at once, which a streaming fold cannot correct without keeping them all.
   */
  maxWeightShare: z.number().min(0.5, 'expected a number in [0.5, 1]').max(1, 'expected a number in [0.5, 1]').optional(),
  /** Metrics whose absolute value exceeds this (or that are not finite) are neither averaged nor published. */
  maxMetricAbs: z.number().positive().default(LIMIT_DEFAULTS.maxMetricAbs),
  /** Largest whole chunked payload a reader reassembles, in bytes (its declared `fedstream-size`). */
  maxPayloadBytes: posInt.default(LIMIT_DEFAULTS.maxPayloadBytes),
  /** Most incomplete chunked payloads a reader holds per topic; the least recently active is evicted beyond it. */
  maxPendingPayloads: posInt.default(LIMIT_DEFAULTS.maxPendingPayloads),
  /** Most bytes of incomplete chunked payloads a reader holds per topic; at least maxPayloadBytes. */
  maxPendingBytes: posInt.default(LIMIT_DEFAULTS.maxPendingBytes),
  /** An incomplete chunked payload with no new chunk for this long (ms) is expired. */
  maxPendingAgeMs: posInt.default(LIMIT_DEFAULTS.maxPendingAgeMs),
  /** Most raw bytes of rejected messages the aggregator keeps for the dead-letter topic per round (beyond: audited only). */
  maxDeadLetterBytesPerRound: nonNegInt.default(LIMIT_DEFAULTS.maxDeadLetterBytesPerRound),
  /** Most rejections of one round audited (and dead-lettered) one by one; beyond, counted by code in ROUND_CLOSED / ROUND_ABANDONED. */
  maxRejectionsPerRound: posInt.default(LIMIT_DEFAULTS.maxRejectionsPerRound),
}).strict().refine((l) => l.maxPendingBytes >= l.maxPayloadBytes, { message: 'must be at least limits.maxPayloadBytes, or no payload of the largest size could be reassembled', path: ['maxPendingBytes'] });

export type Limits = z.infer<typeof limitsSchema>;

/**
 * One participant's public key (docs/security.md, "Signatures"): inline SPKI PEM or a PEM file, with an optional
 * validity window (ISO 8601 times) so that a rotation keeps the old and the new key valid while both are in use.
 */
export const participantKeySchema = z.object({
  /** The participant: a node id, or the aggregator's id (`participants.aggregator`). */
  id: z.string().min(1).max(200),
  role: z.enum(['node', 'aggregator']),
  /** SPKI PEM ("-----BEGIN PUBLIC KEY-----"); never a private key. */
  publicKey: z.string().min(1).optional(),
  /** A PEM file holding the public key; relative to the manifest. */
  publicKeyFile: z.string().min(1).optional(),
  /** The key signs records made at or after this time (the record's own createdAt / eventTime). */
  validFrom: z.iso.datetime({ offset: true }).optional(),
  /** ...and before this time. */
  validUntil: z.iso.datetime({ offset: true }).optional(),
}).strict()
  .refine((k) => (k.publicKey === undefined) !== (k.publicKeyFile === undefined), { message: 'give exactly one of publicKey or publicKeyFile' })
  .refine((k) => !/PRIVATE KEY/.test(k.publicKey ?? ''), { message: 'a private key is never accepted in a manifest; give the public key (fedstream keys generate prints it) and keep the private key in its file', path: ['publicKey'] })
  .refine((k) => !(k.validFrom && k.validUntil) || Date.parse(k.validFrom) < Date.parse(k.validUntil), { message: 'validFrom must be before validUntil', path: ['validUntil'] });

export type ParticipantKeySpec = z.infer<typeof participantKeySchema>;

/**
 * Who may speak for the pipeline (DESIGN.md invariant 6): the public keys of its nodes and of its aggregator.
 * `enrolment: registry` (the default) accepts updates only when signed by the key listed for their node;
 * `enrolment: open` lets any node join (its updates are not verified) and is said so in the compliance report.
 */
export const participantsSchema = z.object({
  enrolment: z.enum(['registry', 'open']).default('registry'),
  /** The aggregator's participant id (for keys read from `keysDir`: `<id>.pub`). */
  aggregator: z.string().min(1).default('aggregator'),
  keys: z.array(participantKeySchema).default([]),
  /** A YAML or JSON file `{ keys: [...] }` with more keys of the same shape; relative to the manifest. */
  keysFile: z.string().min(1).optional(),
  /** A directory of `<participant id>.pub` PEM files (as `fedstream keys generate` writes them); relative to the manifest. */
  keysDir: z.string().min(1).optional(),
}).strict();

export type ParticipantsSection = z.infer<typeof participantsSchema>;

const duration = z.union([nonNegInt, z.string().regex(/^\d+(ms|s|m|h|d)$/, 'expected a duration like 500ms, 30s, 5m, 12h or 7d')]);

export const manifestSchema = z.object({
  apiVersion: z.literal('fedstream/v1'),
  tenant: id,
  name: id,
  description: z.string().optional(),
  model: modelSchema,
  data: z.discriminatedUnion('source', [mnistData, fileData]),
  training: z.object({
    epochs: posInt.default(1),
    batchSize: posInt.default(10),
    learningRate: z.number().positive().default(0.05),
    optimizer: z.enum(['sgd', 'adam']).default('sgd'),
  }).strict().default({ epochs: 1, batchSize: 10, learningRate: 0.05, optimizer: 'sgd' }),
  /**
   * The round protocol (DESIGN.md "Round protocol"): how many rounds, when a round closes, how long it may wait.
   * Independent of the strategy, which decides what a closed round's updates become.
   */
  rounds: z.object({
    /** Number of rounds to run; the pipeline finishes after the last one. */
    count: posInt,
    /** The round closes as soon as this many updates are accepted. */
    targetUpdates: posInt,
    /** At the deadline, the round closes if at least this many arrived; otherwise it is extended or abandoned. */
    minUpdates: posInt,
    /** How long a round waits for its target, in milliseconds. */
    timeoutMs: posInt.default(60_000),
    /** How many times a round below quorum is extended before it is abandoned. */
    maxExtensions: nonNegInt.default(2),
    /**
     * Size each round's target to the nodes alive when it starts (their HEARTBEATs in the telemetry topic):
     * target = min(targetUpdates, alive nodes), never below minUpdates. Off: every round waits for targetUpdates.
     */
    targetAliveNodes: z.boolean().default(false),
    /** A node is alive while its last heartbeat is at most this old, in milliseconds (3 × the default 5 s heartbeat). */
    aliveWindowMs: posInt.default(15_000),
  }).strict().refine((s) => s.minUpdates <= s.targetUpdates, { message: 'minUpdates must not exceed targetUpdates', path: ['minUpdates'] }),
  /**
   * Hostile-input limits (docs/security.md): what an update may contain, and what any record may make a reader hold.
   * Anything beyond is refused before it is allocated or folded, audited and dead-lettered.
   */
  limits: limitsSchema.default(() => ({ ...LIMIT_DEFAULTS })),
  /**
   * The strategy and its own options. Only `name` is checked here: each strategy validates its options with its
   * own schema (aggregator/strategies/registry.ts), which the composition root applies when a manifest is loaded.
   */
  strategy: z.object({ name: z.string().min(1).default('fedavg') }).loose().default({ name: 'fedavg' }),
  topics: z.object({
    partitions: posInt.default(1),
    replicationFactor: posInt.default(1),
    chunkSizeBytes: z.number().int().min(CHUNK_SIZE_BOUNDS.min).max(CHUNK_SIZE_BOUNDS.max).default(DEFAULTS.chunkSizeBytes),
    /** Retention per topic kind; models default to forever (-1) so that every version stays readable. */
    retention: z.partialRecord(z.enum(TOPIC_KINDS), duration).optional(),
  }).strict().default({ partitions: 1, replicationFactor: 1, chunkSizeBytes: DEFAULTS.chunkSizeBytes }),
  kafka: z.object({
    brokers: z.string().min(1).optional(),
    /** How clients authenticate and encrypt (docs/security.md). Absent: plaintext, as a local development broker. */
    security: kafkaSecuritySchema.optional(),
  }).strict().default({}),
  analytics: z.object({
    /**
     * A ClickHouse server URL (http://host:8123, https://host:8443). When absent, the embedded engine at `path` is
     * used. A password in the URL is refused: use `password`.
     */
    clickhouse: z.string().url().refine((u) => { try { return new URL(u).password === ''; } catch { return true; } }, { message: 'a password in the URL is refused (it would end up in logs and shell history); use analytics.password: { file | env }' }).optional(),
    path: z.string().min(1).default(DEFAULTS.embeddedClickhousePath),
    database: z.string().min(1).default(DEFAULTS.clickhouseDatabase),
    /** Server only: the ClickHouse user (default `default`). The embedded engine has no users. */
    user: z.string().min(1).optional(),
    /** Server only: the user's password, from a file or an environment variable. */
    password: secret('password').optional(),
    /** Server only, with https: a PEM CA bundle to trust, and a client certificate and key for mutual TLS. */
    tls: z.object({ ca: z.string().min(1).optional(), cert: z.string().min(1).optional(), key: z.string().min(1).optional() }).strict()
      .refine((t) => (t.cert === undefined) === (t.key === undefined), { message: 'give cert and key together', path: ['cert'] }).optional(),
  }).strict().default({ path: DEFAULTS.embeddedClickhousePath, database: DEFAULTS.clickhouseDatabase }),
  /** Participants' public keys and the enrolment mode; required to run a pipeline (docs/security.md, "Signatures"). */
  participants: participantsSchema.optional(),
  /** Differential privacy: central DP-FedAvg, local DP on the nodes, the (ε, δ) budget (privacy.ts). */
  privacy: privacySchema.optional(),
  retention: z.object({
    telemetryDays: posInt.default(30),
    updatesDays: posInt.default(365),
    auditDays: posInt.default(3650),
  }).strict().default({ telemetryDays: 30, updatesDays: 365, auditDays: 3650 }),
}).strict();

export type Manifest = z.infer<typeof manifestSchema>;
export type ModelSpec = z.infer<typeof modelSchema>;
export type LayerSpec = Manifest['model']['layers'][number];
