import { randomBytes } from 'node:crypto';

/**
 * Gaussian noise for differential privacy, drawn from the operating system's cryptographically secure generator
 * (node:crypto `randomBytes`, i.e. the kernel's CSPRNG), never from Math.random or the project's seeded PRNG
 * (ml/random.ts: reproducible, hence predictable, which noise meant to hide a node's update must not be).
 *
 * Uniforms: 53 random bits per double, u = (k + 0.5) / 2^53 in (0, 1) (never 0, so log(u) is finite). Normals: the
 * Box–Muller transform (Box, Muller. "A Note on the Generation of Random Normal Deviates", Ann. Math. Statist. 29,
 * 1958), z₀ = √(−2 ln u₁)·cos(2πu₂), z₁ = √(−2 ln u₁)·sin(2πu₂): both are used. Bytes are read in blocks of
 * 64 KiB, so a model of P parameters costs P·8 random bytes and P/2 logarithms.
 *
 * Caveat (documented in docs/strategies.md): floating-point Gaussian samplers are not exactly the continuous
 * distribution the DP proofs assume (Mironov, "On Significance of the Least Significant Bits for Differential
 * Privacy", CCS 2012); like Flower's `np.random.normal`, Opacus and TF Privacy, this one does not defend against that
 * attack on the low bits.
 */
export class SecureGaussian {
  private pool = Buffer.alloc(0);
  private at = 0;
  private spare: number | undefined;

  constructor(private readonly blockBytes = 65_536) {}

  /** A uniform double in (0, 1) from 53 fresh random bits. */
  uniform(): number {
    if (this.at + 8 > this.pool.length) {
      this.pool = randomBytes(this.blockBytes);
      this.at = 0;
    }
    const hi = this.pool.readUInt32LE(this.at) >>> 11; // 21 bits
    const lo = this.pool.readUInt32LE(this.at + 4); // 32 bits
    this.at += 8;
    return (hi * 4_294_967_296 + lo + 0.5) / 9_007_199_254_740_992;
  }

  /** One N(0, 1) draw. */
  normal(): number {
    if (this.spare !== undefined) {
      const z = this.spare;
      this.spare = undefined;
      return z;
    }
    const r = Math.sqrt(-2 * Math.log(this.uniform()));
    const t = 2 * Math.PI * this.uniform();
    this.spare = r * Math.sin(t);
    return r * Math.cos(t);
  }

  /** Adds N(0, std²) noise to every element of every array, in place (std ≥ 0; 0 leaves them as they are). */
  addNoise(arrays: readonly Float32Array[], std: number): void {
    if (!(std >= 0) || !Number.isFinite(std)) throw new RangeError(`noise standard deviation ${std} is not a finite number ≥ 0`);
    if (std === 0) return;
    for (const a of arrays) for (let j = 0; j < a.length; j++) a[j] = a[j]! + std * this.normal();
  }
}
