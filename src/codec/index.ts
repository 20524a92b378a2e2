/**
 * The codec: how FedStream records travel on Kafka. Avro single-object encoding with schema resolution
 * (`AvroCodec`), tensor packing and the canonical weights hash (`tensors`), chunking of large payloads
 * (`splitPayload`, `Reassembler`) and the CRC-64-AVRO fingerprint. Byte layouts: docs/wire-format.md.
 */
export type { NamedTensor, Weights } from './types.ts';
export * from './records.ts';
export { AvroCodec, defaultCodec, type DecodedMessage } from './avro.ts';
export { AVRO_NAMESPACE, findRepoRoot, loadSchemaSources, type AvroCodecOptions, type SchemaSource, type WriterSchemaInfo } from './schemas.ts';
export { SINGLE_OBJECT_HEADER_SIZE, SINGLE_OBJECT_MAGIC, readSingleObjectHeader } from './single-object.ts';
export type { FieldProblem } from './problems.ts';
export {
  CRC64_AVRO_EMPTY,
  crc64Avro,
  fingerprintFromBytes,
  fingerprintHex,
  fingerprintToBytes,
  parsingCanonicalForm,
  schemaFingerprint,
} from './fingerprint.ts';
export {
  allFinite,
  assertWeightsSha256,
  countParameters,
  findNonFinite,
  float16BitsToFloat32,
  float32ToFloat16Bits,
  l2Norm,
  packTensors,
  unpackTensors,
  weightsSha256,
  type PackOptions,
  type TensorDtype,
} from './tensors.ts';
export { decodeSafetensors, encodeSafetensors, type SafetensorsFile } from './safetensors.ts';
export { CHUNK_HEADERS, ChunkedPayloadError, isChunk, type HeaderValue, type IncomingMessage } from './chunk-headers.ts';
export { splitPayload, type ChunkRecord, type SplitOptions } from './chunk-split.ts';
export { Reassembler, type AcceptResult, type CompleteResult, type PendingPayloadInfo, type PendingResult, type ReassemblerOptions, type ReassemblerStats } from './chunk-reassemble.ts';
