"""Flower's strategies on given inputs, for test/unit/strategies-flower.test.ts (the reference-equality tests).

Reads one JSON object on stdin:

    {"cases": [{"id": str, "strategy": "fedavg" | "fedprox" | "fedavgm" | "fedadagrad" | "fedadam" | "fedyogi"
                            | "fedmedian" | "fedtrimmedavg" | "krum",
                "options": {<Flower's keyword arguments: eta, beta_1, beta_2, tau, server_learning_rate, beta,
                             num_malicious_clients, num_clients_to_keep, ...>},
                "clipping_norm": C | absent,                                    # clip each update first (below)
                "dtype": "float32" | "float64",
                "initial": [{"shape": [...], "values": [...]}, ...],          # the initial global model
                "rounds": [{"round": r, "base": [[...], ...] | null,
                            "updates": [{"numExamples": n, "tensors": [[...], ...]}, ...]}, ...]}]}

Every number is a float32 value written in full (the caller's Float32Array elements), so numpy rebuilds the same
values; `dtype` is the dtype of the arrays Flower gets: float32 (what Flower's clients send; its fold then rounds to
float32 at every step) or float64 (the same values, so that Flower's own arithmetic is exact to float64). For each
case it builds Flower's strategy with `initial_parameters` and calls `aggregate_fit(server_round, results,
failures=[])` once per round, as Flower's server does, keeping the strategy object (and so its m_t, v_t, momentum)
across rounds. A round's `base`, when given, is the global model FedStream's strategy started that round from: it
becomes Flower's (`current_weights` of FedOpt's subclasses, `initial_parameters` of FedAvgM, where each keeps its
own copy of the global model), so that both take the round's step from the same base weights.

With `clipping_norm`, each update is first clipped relative to the round's base (the given `base`, else the global
model Flower published the round before, the initial one for round 1) by Flower's own
`flwr.supercore.differential_privacy.compute_clip_model_update`, as its fixed-clipping DP wrappers do before they
call the inner strategy (their noise, here none, is left out).

Writes one JSON object on stdout: {"flwr": version, "results": {id: [[tensor values as float64 lists] per round]}}.
"""

import json
import sys

import numpy as np

import flwr
from flwr.common import Code, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.server.strategy import FedAdagrad, FedAdam, FedAvg, FedAvgM, FedMedian, FedProx, FedTrimmedAvg, FedYogi, Krum
from flwr.supercore.differential_privacy import compute_clip_model_update

STRATEGIES = {
    "fedavg": FedAvg,
    "fedprox": FedProx,
    "fedavgm": FedAvgM,
    "fedadagrad": FedAdagrad,
    "fedadam": FedAdam,
    "fedyogi": FedYogi,
    "fedmedian": FedMedian,
    "fedtrimmedavg": FedTrimmedAvg,
    "krum": Krum,
}


def arrays(tensors, shapes, dtype):
    # Through float32 first: the values are the caller's float32 ones whatever dtype Flower then computes in.
    return [np.asarray(t, dtype=np.float32).astype(dtype).reshape(s) for t, s in zip(tensors, shapes, strict=True)]


def run_case(case):
    dtype = np.dtype(case["dtype"])
    shapes = [t["shape"] for t in case["initial"]]
    initial = arrays([t["values"] for t in case["initial"]], shapes, dtype)
    strategy = STRATEGIES[case["strategy"]](initial_parameters=ndarrays_to_parameters(initial), **case["options"])
    ok = Status(code=Code.OK, message="")
    out = []
    current = initial
    clip = case.get("clipping_norm")
    for rnd in case["rounds"]:
        base = current
        if rnd.get("base") is not None:
            base = arrays(rnd["base"], shapes, dtype)
            if hasattr(strategy, "current_weights"):
                strategy.current_weights = base
            elif isinstance(strategy, FedAvgM):
                strategy.initial_parameters = ndarrays_to_parameters(base)
        results = []
        for u in rnd["updates"]:
            update = arrays(u["tensors"], shapes, dtype)
            if clip is not None:
                compute_clip_model_update(update, base, clip)
            results.append((None, FitRes(status=ok, parameters=ndarrays_to_parameters(update), num_examples=u["numExamples"], metrics={})))
        params, _ = strategy.aggregate_fit(server_round=rnd["round"], results=results, failures=[])
        current = parameters_to_ndarrays(params)
        out.append([a.astype(np.float64).ravel().tolist() for a in parameters_to_ndarrays(params)])
    return out


def stable_argsort():
    """numpy's default argsort is not stable on SIMD CPUs (numpy 2.x: argsort([5, 4, 1, 1, 9]) may give [3, 2, ...]),
    so which of two exactly tied updates Flower's Multi-Krum keeps (`np.argsort(scores)[::-1][n - m:]`) depends on the
    machine. A tie there is common: with n − f − 2 = 1 two mutual nearest neighbours have the same score. The
    reference therefore runs Flower's code with a stable argsort (ties to the earlier update), the rule FedStream
    documents (kernels/robust.ts, `krumSelect`); Flower's arithmetic is untouched."""
    default = np.argsort

    def argsort(a, axis=-1, kind=None, order=None, **kw):
        return default(a, axis=axis, kind="stable" if kind is None else kind, order=order, **kw)

    np.argsort = argsort


def main():
    stable_argsort()
    request = json.load(sys.stdin)
    results = {case["id"]: run_case(case) for case in request["cases"]}
    json.dump({"flwr": flwr.__version__, "numpy": np.__version__, "results": results}, sys.stdout)


if __name__ == "__main__":
    main()
