"""Writes a generated collection in the released Flan 2022 format (data/generated_collection.py).

  python scripts/generate_flan_collection.py OUT_DIR --records 1000000 [--tasks 1836] [--shards 16]

Then `FLANJAX_FLAN2022_DIR=OUT_DIR flanjax train ...` trains on it (tasks/flan2022.py).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from flanjax.data import catalog, generated_collection


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("out_dir")
    p.add_argument("--records", type=int, required=True)
    p.add_argument("--tasks", type=int, default=1836)
    p.add_argument("--shards", type=int, default=16, help="shards per submix")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--info_csv", default=None, help="default: DATA_DIR/templates/...")
    args = p.parse_args()
    info = args.info_csv or Path(
        catalog.default_data_dir(), "templates", "flan_collection_info.csv"
    )
    start = time.perf_counter()
    sizes = generated_collection.write_collection(
        args.out_dir, args.records, info, num_tasks=args.tasks, shards=args.shards, seed=args.seed
    )
    took = time.perf_counter() - start
    print(json.dumps({"out_dir": args.out_dir, "records": sizes, "seconds": round(took, 1)}))


if __name__ == "__main__":
    main()
