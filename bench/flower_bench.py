"""Flower's federated averaging on the benchmark's inputs, for bench/aggregate.ts.

Runs `aggregate` and `aggregate_inplace` from flwr.server.strategy.aggregate (the functions FedAvg calls) on N
updates of P float32 parameters. The inputs are generated with the same integer hash as bench/aggregate.ts, so
both sides fold identical bits. When flwr is not importable, `--fallback` runs a verbatim copy of the two
functions on plain numpy, and the output says so.

Output: one JSON object on stdout.
"""

import argparse
import json
import sys
import time
from functools import partial, reduce

import numpy as np


def update_values(k: int, p: int) -> np.ndarray:
    """Update k: the hash of bench/aggregate.ts (updateValues), bit for bit."""
    i = np.arange(p, dtype=np.uint32)
    x = i * np.uint32(0x9E3779B1) + np.uint32(((k + 1) * 0x85EBCA77) & 0xFFFFFFFF)
    x ^= x >> np.uint32(15)
    x *= np.uint32(0x2C1B3C6D)
    x ^= x >> np.uint32(12)
    return (x >> np.uint32(8)).astype(np.float32) / np.float32(16777216) - np.float32(0.5)


def num_examples(k: int) -> int:
    return 100 + (k * 37) % 500


def fallback_functions():
    """Verbatim copies of flwr 1.42 aggregate / aggregate_inplace, on numpy alone."""
    from io import BytesIO

    def ndarrays_to_parameters(arrays):
        out = []
        for a in arrays:
            b = BytesIO()
            np.save(b, a, allow_pickle=False)
            out.append(b.getvalue())
        return out

    def parameters_to_ndarrays(tensors):
        return [np.load(BytesIO(t), allow_pickle=False) for t in tensors]

    def aggregate(results):
        num_examples_total = sum(n for (_, n) in results)
        weighted_weights = [[layer * n for layer in weights] for weights, n in results]
        return [reduce(np.add, layer_updates) / num_examples_total for layer_updates in zip(*weighted_weights)]

    def aggregate_inplace(results):
        num_examples_total = sum(n for (_, n) in results)
        scaling_factors = np.asarray([n / num_examples_total for _, n in results])

        def _try_inplace(x, y, np_binary_op):
            return np_binary_op(x, y, out=x) if np.can_cast(y, x.dtype, casting="same_kind") else np_binary_op(x, np.array(y, x.dtype), out=x)

        params = [_try_inplace(x, scaling_factors[0], np_binary_op=np.multiply) for x in parameters_to_ndarrays(results[0][0])]
        for i, (tensors, _) in enumerate(results[1:], start=1):
            res = (_try_inplace(x, scaling_factors[i], np_binary_op=np.multiply) for x in parameters_to_ndarrays(tensors))
            params = [reduce(partial(_try_inplace, np_binary_op=np.add), layer_updates) for layer_updates in zip(params, res)]
        return params

    def run_inplace(serialized, counts):
        return aggregate_inplace(list(zip(serialized, counts)))

    return aggregate, run_inplace, ndarrays_to_parameters


def flower_functions():
    from flwr.common import Code, FitRes, Parameters, Status, ndarrays_to_parameters
    from flwr.server.strategy.aggregate import aggregate, aggregate_inplace

    status = Status(code=Code.OK, message="")

    def run_inplace(serialized, counts):
        results = [(None, FitRes(status=status, parameters=p, num_examples=n, metrics={})) for p, n in zip(serialized, counts)]
        return aggregate_inplace(results)

    return aggregate, run_inplace, ndarrays_to_parameters


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--p", type=int, required=True)
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--fallback", action="store_true")
    a = ap.parse_args()

    implementation = "flwr"
    flwr_version = None
    if a.fallback:
        implementation = "numpy-copy-of-flwr"
        agg, run_inplace, to_params = fallback_functions()
    else:
        try:
            import flwr

            flwr_version = flwr.__version__
            agg, run_inplace, to_params = flower_functions()
        except Exception as e:  # noqa: BLE001 - any import failure means: use the copy, and say so
            print(f"flwr not importable ({e}); using the numpy copy", file=sys.stderr)
            implementation = "numpy-copy-of-flwr"
            agg, run_inplace, to_params = fallback_functions()

    counts = [num_examples(k) for k in range(a.n)]
    update_bytes = a.n * a.p * 4

    # aggregate_inplace takes serialized Parameters (np.save bytes) and decodes them itself.
    serialized = [to_params([update_values(k, a.p)]) for k in range(a.n)]
    inplace_times = []
    result_inplace = None
    for _ in range(a.reps):
        t0 = time.perf_counter()
        result_inplace = run_inplace(serialized, counts)
        inplace_times.append(time.perf_counter() - t0)
    del serialized

    arrays = [[update_values(k, a.p)] for k in range(a.n)]
    results = list(zip(arrays, counts))
    agg_times = []
    result = None
    for _ in range(a.reps):
        t0 = time.perf_counter()
        result = agg(results)
        agg_times.append(time.perf_counter() - t0)

    # The arithmetic of aggregate_inplace alone, on arrays already decoded: x *= s; acc += x (float32, in place).
    scaling = np.asarray([n / sum(counts) for n in counts])
    fold_times = []
    for _ in range(a.reps):
        t0 = time.perf_counter()
        acc = np.multiply(arrays[0][0], scaling[0], out=arrays[0][0])
        for k in range(1, a.n):
            x = np.multiply(arrays[k][0], scaling[k], out=arrays[k][0])
            acc = np.add(acc, x, out=acc)
        fold_times.append(time.perf_counter() - t0)

    blas = None
    try:
        from threadpoolctl import threadpool_info

        blas = [{k: v for k, v in i.items() if k in ("internal_api", "version", "architecture", "num_threads")} for i in threadpool_info()]
    except Exception:  # noqa: BLE001 - informational only
        pass

    med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    out = {
        "implementation": implementation,
        "flwrVersion": flwr_version,
        "numpyVersion": np.__version__,
        "python": sys.version.split()[0],
        "blas": blas,
        "p": a.p,
        "n": a.n,
        "aggregateSeconds": agg_times,
        "aggregateInplaceSeconds": inplace_times,
        "flowerGbps": update_bytes / med(agg_times) / 1e9,
        "flowerInplaceGbps": update_bytes / med(inplace_times) / 1e9,
        "numpyInplaceFoldSeconds": fold_times,
        "numpyInplaceFoldGbps": update_bytes / med(fold_times) / 1e9,
        # a few values of each result, for the JS side to check that both folded the same inputs
        "probe": [float(result[0][j]) for j in (0, 1, a.p // 2, a.p - 1)],
        "probeInplace": [float(result_inplace[0][j]) for j in (0, 1, a.p // 2, a.p - 1)],
        "resultDtype": str(result[0].dtype),
        "inplaceDtype": str(result_inplace[0].dtype),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
