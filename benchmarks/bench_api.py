"""The Python API, cold: `import segue`, `segue.load(MODEL)` and one recommendation in a fresh
process, timed part by part.

    .venv/bin/python benchmarks/bench_api.py --model demo/models/itemknn --runs 3

Each run is a new interpreter (nothing imported or loaded before); the page cache is whatever
the machine has (a second run reads the model from memory, as a user's second call would).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

CHILD = """
import json, sys, time
t0 = time.perf_counter()
import segue
t1 = time.perf_counter()
model = segue.load(sys.argv[1])
t2 = time.perf_counter()
import pyarrow.parquet as pq  # a URI to ask with, read apart (not timed)
uri = pq.read_table(sys.argv[1] + "/catalog.parquet", columns=["track_uri"]).column(0)[0].as_py()
t3 = time.perf_counter()
model.recommend([uri], n=10)
t4 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "load": t2 - t1, "recommend": t4 - t3,  # + catalog index
                  "total": (t4 - t0) - (t3 - t2)}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    for _ in range(args.runs):
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(args.model)],
            capture_output=True,
            text=True,
            check=True,
        )
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"import {r['import']:.2f} s, load {r['load']:.2f} s, first recommendation "
            f"{r['recommend']:.2f} s, total {r['total']:.2f} s"
        )


if __name__ == "__main__":
    main()
