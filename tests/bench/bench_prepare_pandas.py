#!/usr/bin/python3
"""Reference timing for bench_prepare: pandas reading the PhysioNet 2012 records of the given
folders (one pd.read_csv per record, then one pd.concat), the usual Python way of loading P12.

Usage: /usr/bin/python3 bench_prepare_pandas.py DIR [DIR ...]
Prints one line: "pandas_seconds <s> rows <n> files <k>". Uses Debian's python3-pandas."""
import os
import sys
import time

os.environ.setdefault("OPENBLAS_CORETYPE", "Cooperlake")  # before numpy loads OpenBLAS

import pandas as pd  # noqa: E402


def main():
    dirs = sys.argv[1:]
    files = []
    for d in dirs:
        files += sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".txt") and f[:-4].isdigit())
    t0 = time.perf_counter()
    frames = []
    for path in files:
        df = pd.read_csv(path)
        df["RecordID"] = int(os.path.basename(path)[:-4])
        frames.append(df)
    all_rows = pd.concat(frames, ignore_index=True)
    seconds = time.perf_counter() - t0
    print(f"pandas_seconds {seconds:.3f} rows {len(all_rows)} files {len(files)}")


if __name__ == "__main__":
    main()
