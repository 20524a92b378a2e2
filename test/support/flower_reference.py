"""Flower's strategies on given inputs, for test/unit/strategies-flower.test.ts (the reference-equality tests).

Reads one JSON object on stdin:

    {"cases": [{"id": str, "strategy": "fedavg" | "fedprox" | "fedavgm" | "fedadagrad" | "fedadam" | "fedyogi",
                "options": {<Flower's keyword arguments: eta, beta_1, beta_2, tau, server_learning_rate, ...>},
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

Writes one JSON object on stdout: {"flwr": version, "results": {id: [[tensor values as float64 lists] per round]}}.
"""

import json
import sys

import numpy as np

import flwr
from flwr.common import Code, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.server.strategy import FedAdagrad, FedAdam, FedAvg, FedAvgM, FedProx, FedYogi

STRATEGIES = {
    "fedavg": FedAvg,
    "fedprox": FedProx,
    "fedavgm": FedAvgM,
    "fedadagrad": FedAdagrad,
    "fedadam": FedAdam,
    "fedyogi": FedYogi,
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
    for rnd in case["rounds"]:
        if rnd.get("base") is not None:
            base = arrays(rnd["base"], shapes, dtype)
            if hasattr(strategy, "current_weights"):
                strategy.current_weights = base
            elif isinstance(strategy, FedAvgM):
                strategy.initial_parameters = ndarrays_to_parameters(base)
        results = [
            (None, FitRes(status=ok, parameters=ndarrays_to_parameters(arrays(u["tensors"], shapes, dtype)), num_examples=u["numExamples"], metrics={}))
            for u in rnd["updates"]
        ]
        params, _ = strategy.aggregate_fit(server_round=rnd["round"], results=results, failures=[])
        out.append([a.astype(np.float64).ravel().tolist() for a in parameters_to_ndarrays(params)])
    return out


def main():
    request = json.load(sys.stdin)
    results = {case["id"]: run_case(case) for case in request["cases"]}
    json.dump({"flwr": flwr.__version__, "numpy": np.__version__, "results": results}, sys.stdout)


if __name__ == "__main__":
    main()
