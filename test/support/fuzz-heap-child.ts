/**
 * Run by test/unit/fuzz-codec.test.ts under `node --max-old-space-size=64`: decodes valid messages whose length,
 * count and long fields were replaced by huge varints, and checks after each case that the buffers held stay under
 * 64 MB. A decoder that allocated what a length field claims would die here (heap) or fail the check (buffers).
 * Prints `heap fuzz: N cases, ...` and exits 0, or prints the failure and exits 1.
 */
import fc from 'fast-check';
import { RECORD_KINDS, defaultCodec, type RecordKind } from '../../src/codec/index.ts';
import { FedStreamError } from '../../src/common/errors.ts';
import { samples } from '../fixtures/avro/samples.ts';

const runs = Number(process.argv[2] ?? '500');
const codec = defaultCodec();
const LIMIT = 64 * 1024 * 1024;
let peak = 0;

function varint(zigzag: bigint): Buffer {
  const out: number[] = [];
  let z = BigInt.asUintN(64, zigzag);
  do {
    const b = Number(z & 0x7fn);
    z >>= 7n;
    out.push(z ? b | 0x80 : b);
  } while (z);
  return Buffer.from(out);
}

try {
  fc.assert(
    fc.property(
      fc.constantFrom(...RECORD_KINDS),
      fc.nat(),
      fc.oneof(fc.bigInt({ min: 2n ** 24n, max: 2n ** 64n - 1n }), fc.constantFrom(2n ** 31n, 2n ** 32n - 2n, 2n ** 54n, 2n ** 64n - 2n)),
      (kind: RecordKind, at: number, value: bigint) => {
        const valid = codec.encode(kind, samples()[kind] as never);
        const pos = 10 + (at % (valid.length - 10));
        let end = pos;
        while (end < valid.length && ((valid[end] as number) & 0x80) !== 0) end++;
        const bytes = Buffer.concat([valid.subarray(0, pos), varint(value), valid.subarray(end + 1)]);
        try {
          codec.decode(kind, bytes);
        } catch (err) {
          if (!(err instanceof FedStreamError)) throw err;
        }
        const used = process.memoryUsage().arrayBuffers;
        peak = Math.max(peak, used);
        if (used > LIMIT) throw new Error(`${used} bytes of buffers held after decoding ${kind} with ${value} at byte ${pos}`);
      },
    ),
    { numRuns: runs, seed: Number(process.env.FEDSTREAM_FUZZ_SEED ?? 13) },
  );
  console.log(`heap fuzz: ${runs} cases, peak buffers ${(peak / 1024 / 1024).toFixed(1)} MB`);
} catch (err) {
  console.log(String(err instanceof Error ? err.message : err));
  process.exit(1);
}
