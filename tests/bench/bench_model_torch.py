#!/usr/bin/python3
"""PyTorch's side of tests/bench/bench_model.c: the same model (tests/fixtures/fusemoe_torch.py,
float32, factored mTAND, sparse MoE dispatch) on the batch that bench_model wrote to DIR.

    /usr/bin/python3 tests/bench/bench_model_torch.py DIR STEPS

A training step is zero_grad, forward (training: dropout and routing noise), backward and
torch.optim.Adam's step; inference is the evaluation forward under torch.no_grad(). Times are
medians over the steps, as in bench_model.c. Prints
"RESULT train_stays_per_s infer_stays_per_s train_ms infer_ms peak_rss_kb".
"""
import json
import os
import resource
import statistics
import sys
import time

# Debian's OpenBLAS otherwise runs its generic kernels on this CPU (see src/blas_kernel.h).
os.environ.setdefault("OPENBLAS_CORETYPE", "Cooperlake")

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures"))
import fusemoe_torch as fm  # noqa: E402


def main():
    d, steps = sys.argv[1], int(sys.argv[2])
    torch.set_num_threads(2)
    with open(os.path.join(d, "manifest.json")) as f:
        man = json.load(f)
    B = man["B"]
    mods = [{"name": m["name"], "kind": m["kind"], "C": m["C"]} for m in man["modalities"]]
    tasks = man["tasks"]
    cfg = fm.Config(mods, tasks, man["n_labels"], D=man["D"], Q=man["Q"], H=man["H"], DT=man["DT"],
                    layers=man["layers"], attn_heads=man["attn_heads"], E=man["E"], K=man["K"], hidden=man["hidden"],
                    gate=man["gate"], router=man["router"], noisy=bool(man["noisy"]), dropout=man["dropout"],
                    balance_coef=man["balance_coef"], entropy_coef=man["entropy_coef"],
                    static_tokens=man["static_tokens"], pooling=man["pooling"], head_hidden=man["head_hidden"])

    def load(name, dtype, shape):
        return torch.from_numpy(np.fromfile(os.path.join(d, name), dtype=dtype).reshape(shape).copy())

    batch = {"time": [], "value": [], "mask": [], "count": [], "present": []}
    for m in man["modalities"]:
        L, C, n = m["L"], m["C"], m["name"]
        batch["time"].append(load(n + ".time", np.float32, (B, L)))
        batch["value"].append(load(n + ".value", np.float32, (B, L, C)))
        batch["mask"].append(load(n + ".mask", np.uint8, (B, L, C)).bool())
        batch["count"].append(load(n + ".count", np.int32, (B,)).long())
        batch["present"].append(load(n + ".present", np.uint8, (B,)).long())
    batch["label"] = load("label", np.float32, (B, man["n_labels"]))
    batch["label_mask"] = load("label_mask", np.uint8, (B, man["n_labels"])).bool()

    g = torch.Generator().manual_seed(1)
    params = {k: torch.nn.Parameter(v) for k, v in fm.init_params(cfg, g, torch.float32).items()}
    opt = torch.optim.Adam(params.values(), lr=4e-4)
    noise = torch.Generator().manual_seed(2)

    t_train = []
    for s in range(-2, steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        _, losses, _ = fm.forward(cfg, params, batch, training=True, impl="factored", generator=noise)
        losses["total"].backward()
        opt.step()
        if s >= 0:
            t_train.append(time.perf_counter() - t0)
    t_infer = []
    infer_steps = 2 * steps
    with torch.no_grad():
        for s in range(-1, infer_steps):
            t0 = time.perf_counter()
            fm.forward(cfg, params, batch, training=False, impl="factored")
            if s >= 0:
                t_infer.append(time.perf_counter() - t0)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    mt, mi = statistics.median(t_train), statistics.median(t_infer)
    print("RESULT %.3f %.3f %.3f %.3f %d" % (B / mt, B / mi, 1e3 * mt, 1e3 * mi, rss))


if __name__ == "__main__":
    main()
