"""References for FedStream's differential privacy, for test/unit/strategies-flower-dp.test.ts and
test/unit/privacy-accountant.test.ts.

Reads one JSON object on stdin, writes one on stdout.

    {"accountant": [{"id": str, "q": float, "sigma": float, "steps": int, "delta": float}, ...]}
      -> {"dp_accounting": version, "epsilon": {id: epsilon}}
    Google's dp-accounting RdpAccountant (default orders) composing `steps` Poisson-sampled Gaussian events.

    {"dp": [{"id": str, "clipping": "fixed" | "adaptive", "noise_multiplier": z, "clipping_norm": C,
             "num_sampled_clients": m, "target_clipped_quantile": g, "clip_norm_lr": eta, "seed": int,
             "initial": [{"shape": [...], "values": [...]}],
             "rounds": [{"round": r, "base": [[...], ...] | null, "updates": [{"numExamples": n, "tensors": [...]}]}]}]}
      -> {"flwr": version, "results": {id: {"weights": [[tensor values] per round], "clipping_norm": [C per round]}}}
    Flower 1.42's DifferentialPrivacyServerSide{Fixed,Adaptive}Clipping around FedAvg, `aggregate_fit` per round
    after `configure_fit` would have set the round's parameters (the previous round's result). Adaptive clipping is
    given target_clipped_quantile = 1 - g and clip_norm_lr = -eta: Flower counts the CLIPPED updates where Andrew et
    al. (and FedStream) count the unclipped ones, and this is the same update written Flower's way
    (src/aggregator/strategies/dp-adaptive.ts). `clipping_norm` is the norm after each round.
"""

import json
import sys

import numpy as np


def accountant(cases):
    import dp_accounting
    from dp_accounting.rdp import rdp_privacy_accountant

    out = {}
    for c in cases:
        acc = rdp_privacy_accountant.RdpAccountant()
        event = dp_accounting.PoissonSampledDpEvent(c["q"], dp_accounting.GaussianDpEvent(c["sigma"]))
        acc.compose(dp_accounting.SelfComposedDpEvent(event, c["steps"]))
        out[c["id"]] = acc.get_epsilon(c["delta"])
    from importlib.metadata import version

    return {"dp_accounting": version("dp-accounting"), "epsilon": out}


def dp(cases):
    import flwr
    from flwr.common import Code, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays
    from flwr.server.strategy import (
        DifferentialPrivacyServerSideAdaptiveClipping,
        DifferentialPrivacyServerSideFixedClipping,
        FedAvg,
    )

    results = {}
    for c in cases:
        np.random.seed(c.get("seed", 0))
        shapes = [t["shape"] for t in c["initial"]]
        arr = lambda ts: [np.asarray(t, dtype=np.float32).astype(np.float64).reshape(s) for t, s in zip(ts, shapes, strict=True)]
        current = arr([t["values"] for t in c["initial"]])
        inner = FedAvg(initial_parameters=ndarrays_to_parameters(current))
        if c["clipping"] == "fixed":
            strategy = DifferentialPrivacyServerSideFixedClipping(inner, c["noise_multiplier"], c["clipping_norm"], c["num_sampled_clients"])
        else:
            strategy = DifferentialPrivacyServerSideAdaptiveClipping(
                inner, c["noise_multiplier"], c["num_sampled_clients"], initial_clipping_norm=c["clipping_norm"],
                target_clipped_quantile=1 - c["target_clipped_quantile"], clip_norm_lr=c["clip_norm_lr"],
            )
            strategy.clip_norm_lr = -c["clip_norm_lr"]
        ok = Status(code=Code.OK, message="")
        weights, norms = [], []
        for rnd in c["rounds"]:
            if rnd.get("base") is not None:
                current = arr(rnd["base"])  # the base FedStream started the round from
            strategy.current_round_params = current
            res = [(None, FitRes(status=ok, parameters=ndarrays_to_parameters(arr(u["tensors"])), num_examples=u["numExamples"], metrics={})) for u in rnd["updates"]]
            params, _ = strategy.aggregate_fit(server_round=rnd["round"], results=res, failures=[])
            current = parameters_to_ndarrays(params)
            weights.append([a.astype(np.float64).ravel().tolist() for a in current])
            norms.append(float(strategy.clipping_norm))
        results[c["id"]] = {"weights": weights, "clipping_norm": norms}
    return {"flwr": flwr.__version__, "results": results}


def main():
    request = json.load(sys.stdin)
    if "accountant" in request:
        json.dump(accountant(request["accountant"]), sys.stdout)
    else:
        json.dump(dp(request["dp"]), sys.stdout)


if __name__ == "__main__":
    main()
