/**
 * Robust aggregation kernels: pure functions over a round's updates, as Flower's `flwr/server/strategy/aggregate.py`
 * (`aggregate_median`, `aggregate_trimmed_avg`, `aggregate_krum`, `_compute_distances`) and, for clipping, Flower's
 * `compute_clip_model_update` (flwr/supercore/differential_privacy.py). The strategies (strategies/fedmedian.ts,
 * fedtrimmedavg.ts, krum.ts, clipped.ts) are thin shells around them.
 *
 * Shapes: a round's updates are `n` flat vectors of `P` float32 parameters each (the model's tensors concatenated in
 * order), `updates[k][j]` the j-th parameter of update k. Arithmetic is float64; results are rounded to float32 once.
 * Units: parameters are in weights (the model's own unit); squared distances in weights².
 */
import { FedStreamError } from '../../common/index.ts';

function checkSame(updates: readonly Float32Array[]): number {
  if (updates.length === 0) throw new FedStreamError('INTERNAL', 'a robust aggregate of no update');
  const p = updates[0]!.length;
  for (const u of updates) if (u.length !== p) throw new FedStreamError('INTERNAL', `updates of ${u.length} and ${p} parameters in one round`);
  return p;
}

/**
 * Coordinate-wise median (Yin, Chen, Ramchandran, Bartlett, ICML 2018, Definition 1):
 *
 *     g_j = med{ x^1_j, …, x^n_j }   for every coordinate j,
 *
 * the middle value for odd n, the mean of the two middle values for even n (numpy's `np.median`, as Flower's
 * `aggregate_median`). Examples are ignored (each update counts once). In: n × P; out: P float32. Time O(n log n · P),
 * extra memory O(n).
 */
export function coordinateMedian(updates: readonly Float32Array[], out?: Float32Array): Float32Array {
  const p = checkSame(updates);
  const n = updates.length;
  const res = out ?? new Float32Array(p);
  const col = new Float64Array(n);
  const mid = n >> 1;
  for (let j = 0; j < p; j++) {
    for (let k = 0; k < n; k++) col[k] = updates[k]![j]!;
    col.sort();
    res[j] = n % 2 === 1 ? col[mid]! : (col[mid - 1]! + col[mid]!) / 2;
  }
  return res;
}

/**
 * Coordinate-wise β-trimmed mean (Yin et al., ICML 2018, Definition 2): per coordinate j, with U_j the values
 * x^1_j … x^n_j sorted, drop the ⌊β·n⌋ smallest and the ⌊β·n⌋ largest, and average the rest:
 *
 *     g_j = 1 / (n − 2⌊βn⌋) · Σ_{x ∈ U_j[⌊βn⌋ .. n−⌊βn⌋)} x,        0 ≤ β < 1/2
 *
 * (Flower's `_trim_mean`, after `scipy.stats.trim_mean`: the cut is `int(β·n)` from each end). β = 0 is the plain
 * unweighted mean. Examples are ignored. In: n × P; out: P float32. Time O(n log n · P), extra memory O(n).
 */
export function trimmedMean(updates: readonly Float32Array[], beta: number, out?: Float32Array): Float32Array {
  if (!(beta >= 0 && beta < 0.5)) throw new FedStreamError('INTERNAL', `trimmed mean β ${beta} is outside [0, 0.5)`);
  const p = checkSame(updates);
  const n = updates.length;
  const cut = Math.floor(beta * n);
  const res = out ?? new Float32Array(p);
  const col = new Float64Array(n);
  const kept = n - 2 * cut;
  for (let j = 0; j < p; j++) {
    for (let k = 0; k < n; k++) col[k] = updates[k]![j]!;
    if (cut > 0) col.sort();
    let s = 0;
    for (let k = cut; k < n - cut; k++) s += col[k]!;
    res[j] = s / kept;
  }
  return res;
}

/**
 * Squared L2 distances between every pair of updates, ‖x^i − x^k‖² (Flower's `_compute_distances`): an n × n
 * row-major float64 matrix, zero on the diagonal. Time O(n² · P) (each pair once), memory O(n²).
 */
export function pairwiseSquaredDistances(updates: readonly Float32Array[]): Float64Array {
  checkSame(updates);
  return accumulateSquaredDistances(updates, new Float64Array(updates.length * updates.length));
}

/**
 * Adds a block of coordinates to running pairwise squared distances: for every pair, continues the sum
 * d[i·n + k] += Σ_j (x^i_j − x^k_j)² over the block's coordinates, in order. Fed the blocks of a model in coordinate
 * order, starting from zeros, it computes exactly (bit for bit) what {@link pairwiseSquaredDistances} computes over
 * the whole vectors: the same float64 additions in the same order. In: n rows of the block's B coordinates; `d` n × n.
 *
 * Four pairs (i, k … k + 3) at a time: each pair's sum is still one running float64 sum over j in order (so the same
 * bits), but four independent sums keep the FPU busy where one waits on its own previous addition, and x^i_j is
 * loaded once for the four (about 3× faster at n = 100, P = 4M on the development machine).
 */
export function accumulateSquaredDistances(rows: readonly Float32Array[], d: Float64Array): Float64Array {
  const p = checkSame(rows);
  const n = rows.length;
  if (d.length !== n * n) throw new FedStreamError('INTERNAL', `a ${d.length}-element distance matrix for ${n} updates`);
  for (let i = 0; i < n; i++) {
    const a = rows[i]!;
    let k = i + 1;
    for (; k + 3 < n; k += 4) {
      const b0 = rows[k]!;
      const b1 = rows[k + 1]!;
      const b2 = rows[k + 2]!;
      const b3 = rows[k + 3]!;
      let s0 = d[i * n + k]!;
      let s1 = d[i * n + k + 1]!;
      let s2 = d[i * n + k + 2]!;
      let s3 = d[i * n + k + 3]!;
      for (let j = 0; j < p; j++) {
        const x = a[j]!;
        const t0 = x - b0[j]!;
        s0 += t0 * t0;
        const t1 = x - b1[j]!;
        s1 += t1 * t1;
        const t2 = x - b2[j]!;
        s2 += t2 * t2;
        const t3 = x - b3[j]!;
        s3 += t3 * t3;
      }
      d[i * n + k] = s0;
      d[i * n + k + 1] = s1;
      d[i * n + k + 2] = s2;
      d[i * n + k + 3] = s3;
    }
    for (; k < n; k++) {
      const b = rows[k]!;
      let s = d[i * n + k]!;
      for (let j = 0; j < p; j++) {
        const x = a[j]! - b[j]!;
        s += x * x;
      }
      d[i * n + k] = s;
    }
    for (let q = i + 1; q < n; q++) d[q * n + i] = d[i * n + q]!;
  }
  return d;
}

/**
 * Krum scores (Blanchard, El Mhamdi, Guerraoui, Stainer, NeurIPS 2017, §4): with f the number of Byzantine updates
 * tolerated and i → k meaning that x^k is among the n − f − 2 updates closest to x^i (other than x^i itself),
 *
 *     s(i) = Σ_{i → k} ‖x^i − x^k‖²
 *
 * As Flower's `aggregate_krum`: n − f − 2 is raised to 1 when smaller, and the closest are taken in ascending order of
 * distance after the row's smallest (itself, or an identical update: the same distance, 0). `distances` is
 * {@link pairwiseSquaredDistances}' matrix. Returns n float64 scores (weights²).
 */
export function krumScores(distances: Float64Array, n: number, f: number): Float64Array {
  if (distances.length !== n * n) throw new FedStreamError('INTERNAL', `a ${distances.length}-element distance matrix for ${n} updates`);
  const closest = Math.max(1, n - f - 2);
  const scores = new Float64Array(n);
  const row = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    row.set(distances.subarray(i * n, (i + 1) * n));
    row.sort();
    let s = 0;
    for (let k = 1; k <= closest && k < n; k++) s += row[k]!;
    scores[i] = s;
  }
  return scores;
}

/**
 * The updates Krum keeps: the index of the smallest score (Krum, m = 0: the update itself becomes the new model), or
 * the m smallest (Multi-Krum, Blanchard et al. §4 / El Mhamdi et al. 2018: their mean becomes the new model). Ties go
 * to the earlier update, as numpy's `argmin` and its (stable, for the n ≤ 16 rounds it sorts by insertion) `argsort`
 * in Flower's `aggregate_krum`. Returned in ascending order of score.
 */
export function krumSelect(scores: Float64Array, m: number): number[] {
  const order = Array.from(scores.keys()).sort((a, b) => scores[a]! - scores[b]! || a - b);
  return order.slice(0, Math.max(1, Math.min(m, scores.length)));
}

/**
 * Norm clipping of an update relative to the base (Sun, Kairouz, Suresh, McMahan, "Can You Really Backdoor Federated
 * Learning?", arXiv:1911.07963, 2019, §4 "norm thresholding"; the FlatClip of McMahan et al., ICLR 2018):
 *
 *     Δ = w − w_t,   w' = w_t + Δ · min(1, C / ‖Δ‖₂)
 *
 * with ‖Δ‖₂ over every tensor of the model together. C in weights (L2). Returns the clipped tensors (new float32
 * arrays when scaled; the input's arrays when ‖Δ‖ ≤ C, unchanged), the norm and the scale. As Flower's
 * `compute_clip_model_update`: the scale is min(1, C/‖Δ‖), applied to Δ and added back to the base.
 */
export function clipToNorm(values: readonly Float32Array[], base: readonly Float32Array[], clipNorm: number): { values: Float32Array[]; norm: number; scale: number } {
  if (!(clipNorm > 0)) throw new FedStreamError('INTERNAL', `clip norm ${clipNorm} is not positive`);
  if (values.length !== base.length) throw new FedStreamError('INTERNAL', `an update of ${values.length} tensors against a base of ${base.length}`);
  let sq = 0;
  for (let t = 0; t < values.length; t++) {
    const v = values[t]!;
    const b = base[t]!;
    if (v.length !== b.length) throw new FedStreamError('INTERNAL', `tensor ${t}: ${v.length} values against a base of ${b.length}`);
    for (let j = 0; j < v.length; j++) {
      const x = v[j]! - b[j]!;
      sq += x * x;
    }
  }
  const norm = Math.sqrt(sq);
  const scale = Math.min(1, clipNorm / norm);
  if (!(scale < 1)) return { values: [...values], norm, scale: 1 };
  const out = values.map((v, t) => scaleFromBase(v, base[t]!, scale, new Float32Array(v.length)));
  return { values: out, norm, scale };
}

/**
 * out_j = b_j + (v_j − b_j) · scale, each rounded to float32 once: the clipped update of {@link clipToNorm}, also
 * applied, with the scale recorded at fold time, when a robust strategy re-reads an update from the log in blocks
 * (strategies/spill.ts), so that both paths give the same bits. `v`, `b`, `out` of one length (a block or a tensor).
 */
export function scaleFromBase(v: Float32Array, b: Float32Array, scale: number, out: Float32Array): Float32Array {
  for (let j = 0; j < v.length; j++) out[j] = b[j]! + (v[j]! - b[j]!) * scale;
  return out;
}
