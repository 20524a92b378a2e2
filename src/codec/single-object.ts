/**
 * The Avro single-object header: `C3 01` + the writer schema's CRC-64-AVRO fingerprint (8 bytes, little-endian)
 * before the Avro binary body (docs/wire-format.md).
 */
import { CodecError } from '../common/index.ts';
import { fingerprintFromBytes } from './fingerprint.ts';

export const SINGLE_OBJECT_MAGIC: Readonly<Buffer> = Buffer.from([0xc3, 0x01]);
/** Magic (2 bytes) + fingerprint (8 bytes). */
export const SINGLE_OBJECT_HEADER_SIZE = 10;

/** The same bytes as a Buffer, without a copy. */
export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Reads and checks the single-object header; returns the writer fingerprint. Throws CODEC_BAD_MAGIC
 * (offset 0) when the marker is wrong and CODEC_TRUNCATED when fewer than 10 bytes are present.
 */
export function readSingleObjectHeader(bytes: Uint8Array | null | undefined): bigint {
  if (!bytes || bytes.length === 0) {
    throw new CodecError('CODEC_TRUNCATED', 'empty message: expected an Avro single-object encoding (C3 01 + fingerprint + body)', {
      details: { offset: 0, length: 0 },
    });
  }
  const head = Math.min(bytes.length, 2);
  for (let i = 0; i < head; i++) {
    if (bytes[i] !== SINGLE_OBJECT_MAGIC[i]) {
      const got = Buffer.from(bytes.subarray(0, 2)).toString('hex');
      const hint = bytes[0] === 0x7b ? ' (it looks like JSON)' : '';
      throw new CodecError('CODEC_BAD_MAGIC', `not an Avro single-object message: starts with ${got}, expected c301${hint}`, {
        details: { offset: 0, expected: 'c301', got },
      });
    }
  }
  if (bytes.length < SINGLE_OBJECT_HEADER_SIZE) {
    throw new CodecError('CODEC_TRUNCATED', `message of ${bytes.length} byte(s) ends inside the 10-byte single-object header`, {
      details: { offset: bytes.length, needed: SINGLE_OBJECT_HEADER_SIZE, length: bytes.length },
    });
  }
  return fingerprintFromBytes(bytes, 2);
}
