import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { crc32c } from '../../src/transport/kafka/crc32c.ts';
// The adapter (kafka/index.ts), not kafkajs-crc.ts, comes first: the install test checks that the adapter's own first import runs before kafkajs.
import '../../src/transport/kafka/index.ts';
import { installed, kafkajsCrc32C } from '../../src/transport/kafka/kafkajs-crc.ts';

const require = createRequire(import.meta.url);
const KAFKAJS_CRC32C = 'kafkajs/src/protocol/recordBatch/crc32C/crc32C.js';
const original = require(KAFKAJS_CRC32C) as (buffer: Uint8Array) => number;

function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s;
  };
}

/** `length` random bytes at an odd offset inside a larger buffer, so that reads are unaligned. */
function randomBytes(length: number, next: () => number): Buffer {
  const backing = Buffer.alloc(length + 8);
  for (let i = 0; i < backing.length; i++) backing[i] = next() >>> 24;
  return backing.subarray(3, 3 + length);
}

describe('crc32c', () => {
  it('gives the catalogued check value of "123456789"', () => {
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
  });

  it('gives the RFC 3720 B.4 values', () => {
    expect(crc32c(new Uint8Array(32))).toBe(0x8a9136aa);
    expect(crc32c(new Uint8Array(32).fill(0xff))).toBe(0x62a8ab43);
    expect(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i))).toBe(0x46dd794e);
    expect(crc32c(Uint8Array.from({ length: 32 }, (_, i) => 31 - i))).toBe(0x113fdb5c);
  });

  it("agrees with kafkajs' own on every length up to 300 and on large buffers, at odd offsets", () => {
    const next = prng(7);
    for (const length of [...Array.from({ length: 301 }, (_, i) => i), 4093, 65_537, 810_000, 1_048_579]) {
      const bytes = randomBytes(length, next);
      expect(crc32c(bytes), `length ${length}`).toBe(original(bytes));
    }
  });

  it('continues from a seed as if the buffers were one', () => {
    const bytes = randomBytes(1000, prng(11));
    for (const cut of [0, 1, 15, 16, 17, 500, 1000]) {
      expect(crc32c(bytes.subarray(cut), crc32c(bytes.subarray(0, cut)))).toBe(crc32c(bytes));
    }
  });
});

describe('kafkajs-crc', () => {
  it("is installed into kafkajs by the Kafka adapter's first import (src/transport/kafka/), before kafkajs loads", () => {
    expect(installed).toBe(true);
    // kafkajs-crc.ts required kafkajs' own CRC for its self-check: that precedes kafkajs' main module in the cache.
    const loadOrder = Object.keys(require.cache);
    expect(loadOrder.indexOf(require.resolve(KAFKAJS_CRC32C))).toBeGreaterThanOrEqual(0);
    expect(loadOrder.indexOf(require.resolve(KAFKAJS_CRC32C))).toBeLessThan(loadOrder.indexOf(require.resolve('kafkajs')));
  });

  it("replaces the CRC of kafkajs' record batch encoder, with the same bytes", async () => {
    expect(require('kafkajs/src/protocol/recordBatch/crc32C/index.js')).toBe(kafkajsCrc32C);
    const { RecordBatch } = require('kafkajs/src/protocol/recordBatch/v0/index.js') as {
      RecordBatch: (batch: { records: unknown[] }) => Promise<{ buffer: Buffer }>;
    };
    const Record = require('kafkajs/src/protocol/recordBatch/record/v0/index.js') as (record: { key: Buffer; value: Buffer; offsetDelta: number }) => unknown;
    // The encoder took its CRC from the module now in the cache.
    const v0 = require.cache[require.resolve('kafkajs/src/protocol/recordBatch/v0/index.js')]!;
    expect(v0.children.find((m) => m.id.endsWith('crc32C/index.js'))?.exports).toBe(kafkajsCrc32C);

    const next = prng(13);
    const records = [1, 200, 810_000].map((size, offsetDelta) => Record({ key: Buffer.from(`k${offsetDelta}`), value: randomBytes(size, next), offsetDelta }));
    const { buffer } = await RecordBatch({ records });
    // FirstOffset int64, Length int32, PartitionLeaderEpoch int32, Magic int8, then the CRC of everything after it.
    const body = buffer.subarray(21);
    expect(buffer.readUInt32BE(17)).toBe(original(body));
  });
});
