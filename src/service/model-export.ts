/**
 * `fedstream model export`: a published model version, read back from the pipeline's models topic, written as files
 * any serving stack can load, with its lineage beside it (docs/model-export.md):
 *
 *   model.json + weights.bin   a TensorFlow.js LayersModel (`tf.loadLayersModel`), the model the aggregator evaluates
 *   model.safetensors          the same weights as safetensors (PyTorch, JAX, NumPy, ...), the lineage's key facts
 *                              in its `__metadata__`
 *   lineage.json               the version, its parents back to version 0 with the nodes and updates behind each,
 *                              the strategy, the signer's key id, the weights' sha256 and each file's sha256
 *
 * Only versions signed by the pipeline's aggregator are exported (protocol/versions.ts), and the weights are checked
 * against the sha256 their record carries (CODEC_CHECKSUM_MISMATCH otherwise).
 */
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { encodeSafetensors, unpackTensors, weightsSha256, type ModelVersionRecord } from '../codec/index.ts';
import { FedStreamError, type Logger } from '../common/index.ts';
import { topicPrefix, type Manifest } from '../config/index.ts';
import { loadTfRuntime } from '../ml/index.ts';
import { pipelineTopics, readModelVersions, SIGNATURE_HEADERS, type ParticipantRegistry, type Payload } from '../protocol/index.ts';
import type { Transport } from '../transport/index.ts';

export type ExportFormat = 'tfjs' | 'safetensors';
export const EXPORT_FORMATS: readonly ExportFormat[] = ['tfjs', 'safetensors'];

export interface ExportOptions {
  manifest: Manifest;
  transport: Transport;
  registry: ParticipantRegistry;
  logger: Logger;
  /** The version to export (default: the latest published). */
  version?: number;
  /** Output directory (created). */
  out: string;
  formats?: readonly ExportFormat[];
}

/** One ancestor in the lineage: a version's facts without its weights. */
export interface LineageEntry {
  version: number;
  parentVersion: number;
  round: number;
  strategy: string;
  createdAt: string;
  weightsSha256: string;
  totalExamples: number;
  rejectedCount: number;
  metrics: Record<string, number>;
  contributors: { updateId: string; nodeId: string; numExamples: number; weight: number }[];
}

export interface ExportResult {
  version: number;
  dir: string;
  /** File name → its sha256 (hex) and size in bytes, lineage.json excepted. */
  files: Record<string, { sha256: string; bytes: number }>;
  lineage: Record<string, unknown>;
}

function entryOf(v: ModelVersionRecord): LineageEntry {
  return {
    version: v.version,
    parentVersion: v.parentVersion,
    round: Number(v.round),
    strategy: v.strategy,
    createdAt: new Date(Number(v.createdAt)).toISOString(),
    weightsSha256: v.weightsSha256,
    totalExamples: Number(v.totalExamples),
    rejectedCount: v.rejectedCount,
    metrics: { ...v.metrics },
    contributors: v.contributors.map((c) => ({ updateId: c.updateId, nodeId: c.nodeId, numExamples: Number(c.numExamples), weight: c.weight })),
  };
}

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/**
 * Reads the models topic to its end and writes the chosen version's files into `out`. Throws VERSION_NOT_FOUND
 * when the pipeline has no (such) version, CODEC_CHECKSUM_MISMATCH when its weights do not match their sha256.
 */
export async function exportModel(o: ExportOptions): Promise<ExportResult> {
  const m = o.manifest;
  const topic = pipelineTopics(m).models;
  const entries = new Map<number, LineageEntry>();
  let chosen: { record: ModelVersionRecord; payload: Payload } | undefined;
  await readModelVersions(o.transport, m, topic, {
    logger: o.logger,
    registry: o.registry,
    onVersion: (v, payload) => {
      entries.set(v.version, entryOf(v));
      // Keep the weights of the one version asked for (or of the latest so far) only.
      if (o.version === undefined ? !chosen || v.version >= chosen.record.version : v.version === o.version) chosen = { record: v, payload };
    },
  });
  if (!chosen) {
    const have = [...entries.keys()];
    throw new FedStreamError('VERSION_NOT_FOUND', o.version === undefined
      ? `pipeline ${topicPrefix(m)} has no published model version in ${topic} (has the aggregator run against this broker?)`
      : `pipeline ${topicPrefix(m)} has no model version ${o.version} in ${topic}; it has ${have.length ? `versions ${Math.min(...have)}..${Math.max(...have)}` : 'none'}`,
    { details: { pipeline: topicPrefix(m), topic, version: o.version ?? null, versions: have.length } });
  }
  const v = chosen.record;
  const weights = unpackTensors(v.tensors);
  const sha = weightsSha256(weights);
  if (sha !== v.weightsSha256) {
    throw new FedStreamError('CODEC_CHECKSUM_MISMATCH', `model version ${v.version} in ${topic} has weights sha256 ${sha}, its record says ${v.weightsSha256}`, { details: { version: v.version, topic } });
  }
  const ancestors: LineageEntry[] = [];
  for (let at = v.parentVersion; at >= 0;) {
    const e = entries.get(at);
    if (!e) break;
    ancestors.push(e);
    at = e.parentVersion;
  }
  const formats = o.formats ?? EXPORT_FORMATS;
  const dir = resolve(o.out);
  mkdirSync(dir, { recursive: true });
  const files: ExportResult['files'] = {};
  const write = (name: string, bytes: Buffer): void => {
    writeFileSync(join(dir, name), bytes);
    files[name] = { sha256: sha256(bytes), bytes: bytes.length };
  };
  const spec = JSON.parse(v.modelSpec) as Manifest['model'];
  if (formats.includes('tfjs')) {
    const { initBackend, layersModelFiles, LAYERS_WEIGHTS_FILE } = await loadTfRuntime();
    await initBackend(undefined, { logger: o.logger });
    const tfjs = await layersModelFiles(spec, weights, `fedstream model export (${topicPrefix(m)} v${v.version})`);
    write(LAYERS_WEIGHTS_FILE, tfjs.weights);
    write('model.json', Buffer.from(`${JSON.stringify(tfjs.modelJson, null, 2)}\n`));
  }
  if (formats.includes('safetensors')) {
    write('model.safetensors', encodeSafetensors(weights, {
      format: 'pt', // the key the Hugging Face tools look for; the tensors are framework-neutral float32
      'fedstream.tenant': m.tenant,
      'fedstream.pipeline': m.name,
      'fedstream.version': String(v.version),
      'fedstream.round': String(v.round),
      'fedstream.strategy': v.strategy,
      'fedstream.weightsSha256': v.weightsSha256,
      'fedstream.modelSpec': v.modelSpec,
    }));
  }
  const keyId = chosen.payload.headers[SIGNATURE_HEADERS.keyId]?.toString('utf8');
  const lineage = {
    format: 'fedstream-lineage/v1',
    tenant: m.tenant,
    pipeline: m.name,
    ...entryOf(v),
    weightsSha256Algorithm: 'sha256 over each tensor in order: u32le name length, name (UTF-8), u32le rank, u32le dims, float32 LE values (docs/wire-format.md)',
    modelSpec: spec,
    source: { topic, partition: chosen.payload.partition, firstOffset: chosen.payload.firstOffset, lastOffset: chosen.payload.lastOffset, ...(keyId ? { signedByKeyId: keyId } : {}) },
    ancestors,
    files,
    exportedAt: new Date().toISOString(),
  };
  writeFileSync(join(dir, 'lineage.json'), `${JSON.stringify(lineage, null, 2)}\n`);
  return { version: v.version, dir, files, lineage };
}
