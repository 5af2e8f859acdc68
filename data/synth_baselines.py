"""How much each modality of a synthetic cohort tells: simple baselines on hand-made features.

    ./build/fusemoe synth --out /tmp/synth --stays 5000
    /usr/bin/python3 data/synth_baselines.py /tmp/synth

Per stay, each modality becomes a fixed vector (vitals: mean, sd, slope and count per variable;
labs: mean, last value and count per variable; static: the four descriptors; notes and image
features: the mean vector; pixels: the mean image pooled to 8 x 8), with a presence flag for
missing modalities, and an L2 logistic regression is cross-validated (5 folds) on each
modality alone, on all of them, and on all but one. It checks that the planted signal is spread
across modalities, not a measure of what FuseMoE reaches.
"""
import csv
import os
import sys

import h5py
import numpy as np
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

VITALS = ["HR", "MAP", "RespRate", "Temp", "SpO2"]
LABS = ["Creatinine", "BUN", "HCO3", "Lactate", "WBC", "Platelets", "Glucose"]
STATIC = ["Age", "Gender", "Height", "Weight"]


def main():
    d = sys.argv[1]
    labels = list(csv.DictReader(open(os.path.join(d, "labels.csv"))))
    ids = [int(r["stay_id"]) for r in labels]
    pos = {s: i for i, s in enumerate(ids)}
    n = len(ids)
    ranges = {r["variable"]: (float(r["min"]), float(r["max"])) for r in csv.DictReader(open(os.path.join(d, "modalities.csv")))}
    series = {}
    for r in csv.DictReader(open(os.path.join(d, "observations.csv"))):
        v = float(r["value"])
        lo, hi = ranges[r["variable"]]
        if lo <= v <= hi:
            series.setdefault((int(r["stay_id"]), r["variable"]), []).append((float(r["time_h"]), v))

    def series_feats(names, kind):
        out = np.zeros((n, len(names) * 3 + 1))
        for i, s in enumerate(ids):
            for j, name in enumerate(names):
                obs = np.array(series.get((s, name), []))
                if len(obs) == 0:
                    continue
                t, v = obs[:, 0], obs[:, 1]
                if kind == "vitals":
                    slope = np.polyfit(t, v, 1)[0] if len(obs) > 2 else 0.0
                    out[i, 3 * j: 3 * j + 3] = [v.mean(), v.std(), slope]
                else:
                    out[i, 3 * j: 3 * j + 3] = [v.mean(), v[-1], len(v)]
            out[i, -1] = any((s, name) in series for name in names)
        return out

    feats = {"vitals": series_feats(VITALS, "vitals"), "labs": series_feats(LABS, "labs")}
    st = np.zeros((n, 2 * len(STATIC)))
    for i, s in enumerate(ids):
        for j, name in enumerate(STATIC):
            obs = series.get((s, name))
            if obs:
                st[i, 2 * j: 2 * j + 2] = [obs[0][1], 1.0]
    feats["static"] = st

    def mean_vectors(path, ds):
        f = h5py.File(path, "r")
        sid, x = f["stay_id"][:], f[ds][:]
        out = np.zeros((n, x.shape[1] + 1))
        cnt = np.zeros(n)
        for s, row in zip(sid, x):
            out[pos[int(s)], :-1] += row
            cnt[pos[int(s)]] += 1
        out[cnt > 0, :-1] /= cnt[cnt > 0, None]
        out[:, -1] = cnt > 0
        return out

    feats["notes"] = mean_vectors(os.path.join(d, "notes.h5"), "embedding")
    feats["image features"] = mean_vectors(os.path.join(d, "image_features.h5"), "features")
    px = np.zeros((n, 65))
    cnt = np.zeros(n)
    for r in csv.DictReader(open(os.path.join(d, "images", "index.csv"))):
        im = Image.open(os.path.join(d, "images", r["path"])).convert("F").resize((8, 8), Image.BOX)
        i = pos[int(r["stay_id"])]
        px[i, :-1] += np.asarray(im).ravel() / 255.0
        cnt[i] += 1
    px[cnt > 0, :-1] /= cnt[cnt > 0, None]
    px[:, -1] = cnt > 0
    feats["pixels"] = px

    tasks = {"mortality": np.array([int(r["mortality"]) for r in labels])}
    known = np.array([r["los_days"] != "" for r in labels])
    tasks["LOS > 7 d"] = np.array([float(r["los_days"]) > 7 if r["los_days"] else 0 for r in labels]).astype(int)
    phe = [k for k in labels[0] if k.startswith("phe_")]

    def cv_auc(x, y, mask=None):
        mask = np.ones(len(y), bool) if mask is None else mask
        x, y = x[mask], y[mask]
        pred = np.zeros(len(y))
        for tr, te in StratifiedKFold(5, shuffle=True, random_state=0).split(x, y):
            m = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000)).fit(x[tr], y[tr])
            pred[te] = m.predict_proba(x[te])[:, 1]
        return roc_auc_score(y, pred)

    names = list(feats)
    sets = [([k], k) for k in names] + [(names, "all")]
    sets += [([k for k in names if k != drop], "all but " + drop) for drop in names]
    sets += [([k for k in names if k not in ("image features", "pixels")], "all but images (both forms)")]
    lat = list(csv.DictReader(open(os.path.join(d, "latent.csv"))))
    feats["latent"] = np.array([[float(r[k]) for k in ("cardio", "renal", "resp", "neuro", "infect", "age")] for r in lat])
    sets += [(["latent"], "latent factors (oracle)")]
    print("features".ljust(30), "mortality  LOS>7d  phenotypes(macro)")
    for s, label in sets:
        x = np.hstack([feats[k] for k in s])
        m = cv_auc(x, tasks["mortality"])
        los = cv_auc(x, tasks["LOS > 7 d"], known)
        ph = np.mean([cv_auc(x, np.array([int(r[p]) for r in labels])) for p in phe])
        print(f"{label:30s} {m:.3f}      {los:.3f}   {ph:.3f}")


if __name__ == "__main__":
    main()
