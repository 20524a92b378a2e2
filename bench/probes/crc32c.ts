/**
 * Probe behind src/transport/kafka/kafkajs-crc.ts: the CRC-32C of a produced record batch, kafkajs' byte-at-a-time loop
 * against src/transport/kafka/crc32c.ts, on a model version's batch (810,000 bytes) and on a small one (200 bytes), both
 * starting at an odd byte offset as a slice of a larger buffer may. Median of 9 reps, after a warm-up.
 *
 *   npx tsx bench/probes/crc32c.ts
 */
import { createRequire } from 'node:module';
import { crc32c } from '../../src/transport/kafka/crc32c.ts';
import { median } from '../lib.ts';

const require = createRequire(import.meta.url);
const kafkajsCrc32C = require('kafkajs/src/protocol/recordBatch/crc32C/crc32C.js') as (buffer: Uint8Array) => number;

for (const size of [810_000, 200]) {
  const backing = Buffer.alloc(size + 1);
  for (let i = 0; i < backing.length; i++) backing[i] = (i * 2654435761) >>> 24;
  const bytes = backing.subarray(1);
  if (crc32c(bytes) !== kafkajsCrc32C(bytes)) throw new Error(`the two CRCs differ on ${size} bytes`);
  // About 8 MB per rep, whatever the size, so that a rep of the small buffer is not lost in timer resolution.
  const calls = Math.ceil(8e6 / size);
  for (const [name, fn] of [['kafkajs', kafkajsCrc32C], ['crc32c ', crc32c]] as const) {
    const ms: number[] = [];
    for (let rep = 0; rep < 10; rep++) {
      const t0 = performance.now();
      for (let c = 0; c < calls; c++) fn(bytes);
      if (rep > 0) ms.push(performance.now() - t0);
    }
    process.stdout.write(`${String(size).padStart(7)} B  ${name} ${((calls * size) / median(ms) / 1e3).toFixed(0).padStart(5)} MB/s\n`);
  }
}
