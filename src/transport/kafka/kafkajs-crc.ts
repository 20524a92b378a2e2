/**
 * Side effect: kafkajs 2.2.4 checksums every produced record batch with a byte-at-a-time CRC-32C (~0.35 GB/s, ~3 ms
 * per 810 KB model version); this puts src/transport/kafka/crc32c.ts in its place. kafkajs' record batch encoder
 * (recordBatch/v0) takes the function from `require('../crc32C')` once, when it loads, so the replacement goes into
 * `require.cache` under that path before then. Import this module before kafkajs.
 */
import { Module, createRequire } from 'node:module';
import { crc32c } from './crc32c.ts';

const require = createRequire(import.meta.url);
const CRC32C_INDEX = require.resolve('kafkajs/src/protocol/recordBatch/crc32C/index.js');
const RECORD_BATCH_V0 = require.resolve('kafkajs/src/protocol/recordBatch/v0/index.js');

/** A broker rejects a batch with a wrong CRC (CORRUPT_MESSAGE), so install only what agrees with kafkajs' own. */
function agreesWithKafkajs(): boolean {
  const original = require('kafkajs/src/protocol/recordBatch/crc32C/crc32C.js') as (buffer: Buffer) => number;
  const bytes = Buffer.alloc(1000);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 167 + 13) & 0xff;
  return [Buffer.from('123456789'), bytes.subarray(3, 996)].every((b) => crc32c(b) === original(b));
}

/** What kafkajs' `recordBatch/crc32C/index.js` exports once installed: unsigned, like kafkajs' own. */
export const kafkajsCrc32C = (buffer: Buffer): number => crc32c(buffer);

function install(): boolean {
  // Too late once the encoder holds kafkajs' function; replacing the cache entry then would change nothing.
  if (require.cache[RECORD_BATCH_V0] || !agreesWithKafkajs()) return false;
  const entry = new Module(CRC32C_INDEX);
  entry.filename = CRC32C_INDEX;
  entry.exports = kafkajsCrc32C;
  entry.loaded = true;
  require.cache[CRC32C_INDEX] = entry;
  return true;
}

/** Whether kafkajs will checksum record batches with src/transport/kafka/crc32c.ts. */
export const installed = install();
