"""Data processing: a map-reduce over real files. A workflow of three steps:

    generate  → writes a day of sales events as CSV shards (one file per store region batch), the
                way an export job would drop them in a bucket or a shared directory
    summarise → a map: one task per shard file, reading it and summarising revenue, units and
                orders per region (each task writes its partial summary as JSON beside the shard)
    merge     → reduces the partial summaries into one report (report.json) with per-region totals
                and the overall average order value

The example then checks the report against the CSV files themselves, read here without the cluster.
Files go to DATA_DIR (default a new temporary directory; on a real cluster a shared mount).

    python3 shard_reduce.py     (against `batch dev` or BATCH_API/BATCH_TOKEN)
"""
import csv
import json
import os
import tempfile

import batchapi as batch

DATA_DIR = os.environ.get("DATA_DIR") or tempfile.mkdtemp(prefix="sales-")
os.makedirs(DATA_DIR, exist_ok=True)
SHARDS = 8
ROWS_PER_SHARD = 5000
REGIONS = ["north", "south", "east", "west", "central"]
PRODUCTS = {"widget": 4.5, "gadget": 12.0, "gizmo": 27.5, "doohickey": 63.0}


@batch.task(cpus=0.2, memory="128Mi")
def generate(data_dir: str, shards: int, rows: int) -> list:
    """Writes `shards` CSV files of `rows` sales events each (seeded: the same data every run)."""
    import random

    rng = random.Random(2026)
    paths = []
    for s in range(shards):
        path = os.path.join(data_dir, f"sales-{s:03d}.csv")
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["order_id", "region", "product", "units", "unit_price"])
            for i in range(rows):
                product = rng.choice(list(PRODUCTS))
                w.writerow([f"{s}-{i}", rng.choice(REGIONS), product, rng.randint(1, 12), PRODUCTS[product]])
        paths.append(path)
    return paths


@batch.task(cpus=0.2, memory="128Mi", retries=2)
def summarise(path: str) -> str:
    """Revenue, units and orders per region of one shard, written to `<shard>.summary.json`."""
    per_region: dict = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            r = per_region.setdefault(row["region"], {"orders": 0, "units": 0, "revenue": 0.0})
            r["orders"] += 1
            r["units"] += int(row["units"])
            r["revenue"] += int(row["units"]) * float(row["unit_price"])
    out = path + ".summary.json"
    with open(out, "w") as f:
        json.dump({"shard": os.path.basename(path), "regions": per_region}, f)
    return out


@batch.task(cpus=0.2, memory="128Mi")
def merge(data_dir: str, summaries: list) -> dict:
    """Adds the shards' summaries into one report (`report.json`)."""
    totals: dict = {}
    for p in summaries:
        with open(p) as f:
            for region, r in json.load(f)["regions"].items():
                t = totals.setdefault(region, {"orders": 0, "units": 0, "revenue": 0.0})
                for k in t:
                    t[k] += r[k]
    orders = sum(t["orders"] for t in totals.values())
    revenue = sum(t["revenue"] for t in totals.values())
    report = {"shards": len(summaries), "orders": orders, "revenue": round(revenue, 2),
              "average_order_value": round(revenue / orders, 4),
              "regions": {k: {**v, "revenue": round(v["revenue"], 2)} for k, v in sorted(totals.items())}}
    with open(os.path.join(data_dir, "report.json"), "w") as f:
        json.dump(report, f, indent=2)
    return report


def check_against_files(paths: list, report: dict) -> None:
    """The report's totals, recomputed here from the CSV files alone."""
    orders, revenue = 0, 0.0
    for p in paths:
        with open(p, newline="") as f:
            for row in csv.DictReader(f):
                orders += 1
                revenue += int(row["units"]) * float(row["unit_price"])
    assert report["orders"] == orders, (report["orders"], orders)
    assert abs(report["revenue"] - revenue) < 0.01 * len(report["regions"]), (report["revenue"], revenue)


if __name__ == "__main__":
    with batch.workflow("sales-report") as wf:
        files = wf.step(generate.options(name="generate"), DATA_DIR, SHARDS, ROWS_PER_SHARD)
        parts = wf.map(summarise.options(name="summarise"), files)
        total = wf.step(merge.options(name="merge"), DATA_DIR, parts.output)  # the summaries of every shard, in shard order
    view = wf.wait(timeout=300)
    assert view["phase"] == "Succeeded", {s["name"]: s["phase"] for s in view["steps"]}
    paths, report = wf.result(files), wf.result(total)
    check_against_files(paths, report)
    top = max(report["regions"].items(), key=lambda kv: kv[1]["revenue"])
    print(f"report at {os.path.join(DATA_DIR, 'report.json')}; top region {top[0]} with {top[1]['revenue']:.2f}")
    print(f"ok: {report['shards']} shards, {report['orders']} rows, {len(report['regions'])} regions, "
          f"revenue {report['revenue']:.2f}, average order {report['average_order_value']:.2f} (workflow {wf.id})")
