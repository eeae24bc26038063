#!/usr/bin/env python3
"""Runs Semble's code-search tasks (../shared/evaldata) through `codeq eval`.

For each named repo: checks out the pinned revision from a fetched bare git dir into
WORK/NAME (outside the project), indexes its benchmark root, converts the tasks into a
codeq question set, runs `codeq eval --json -k 10`, and scores NDCG@10 exactly as Semble's
published scorer does (binary relevance over relevant + secondary, file-level dedupe,
suffix path match, ideal = min(10, #targets), mean per repo). Not part of CI: it needs
fetched corpora.

usage: scripts/semble-eval.py --codeq BIN --work DIR NAME=BARE_GIT_DIR [...]
"""
import argparse, json, math, pathlib, subprocess, sys

from evaldata import EVALDATA, checkout




def hit(result, target):
    result, target = result.replace("\\", "/"), target.replace("\\", "/")
    return result == target or result.endswith("/" + target) or target.endswith("/" + result)


def semble_ndcg(files, targets):
    ranks = []
    for t in targets:
        rank = next((i + 1 for i, f in enumerate(files[:10]) if hit(f, t)), None)
        if rank:
            ranks.append(rank)
    dcg = sum(1 / math.log2(r + 1) for r in ranks)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(10, len(targets))))
    return dcg / ideal if ideal else 0.0


def target_path(t):
    return t if isinstance(t, str) else t["path"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--codeq", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("repos", nargs="+", help="NAME=BARE_GIT_DIR")
    args = ap.parse_args()
    repos = {r["name"]: r for r in json.load(open(EVALDATA / "semble-repos.json"))}
    tasks = [json.loads(l) for l in open(EVALDATA / "semble-tasks.jsonl")]
    rows = []
    for spec in args.repos:
        name, bare = spec.split("=", 1)
        meta = repos[name]
        dest = pathlib.Path(args.work) / name
        checkout(bare, meta["revision"], dest)
        root = dest / meta["benchmark_root"] if meta.get("benchmark_root") else dest
        prefix = (meta.get("benchmark_root") or "").rstrip("/") + "/" if meta.get("benchmark_root") else ""
        mine = [t for t in tasks if t["repo"] == name]
        strip = lambda p: p[len(prefix):] if prefix and p.startswith(prefix) else p
        lines = [f'name = "semble-{name}"', 'tier = "monitoring"', ""]
        for t in mine:
            rel = [f"*:{strip(target_path(x))}" for x in t["relevant"]]
            sec = [f"*:{strip(target_path(x))}" for x in t.get("secondary", [])]
            lines += ["[[question]]", f'id = "{t["idx"]}"', f"question = {json.dumps(t['query'])}",
                      f"relevant = {json.dumps(rel)}", f"secondary = {json.dumps(sec)}", ""]
        set_file = pathlib.Path(args.work) / f"semble-{name}.toml"
        set_file.write_text("\n".join(lines))
        subprocess.run([args.codeq, "index", str(root)], check=True, stdout=subprocess.DEVNULL)
        out = subprocess.run([args.codeq, "eval", str(set_file), "--index-dir", str(root / ".codeq"),
                              "--json", "-k", "10"], capture_output=True, text=True)
        report = json.loads(out.stdout)["report"]
        by_id = {q["id"]: q for q in report["sets"][0]["questions"]}
        ndcgs = []
        for t in mine:
            files = [f.split(":", 1)[1] for f in by_id[str(t["idx"])]["files"]]
            targets = [strip(target_path(x)) for x in t["relevant"] + t.get("secondary", [])]
            ndcgs.append(semble_ndcg(files, targets))
        m = report["overall"]
        row = {"repo": name, "tasks": len(mine), "semble_ndcg10": sum(ndcgs) / len(ndcgs),
               "hit@1": m["hit_at_1"], "hit@5": m["hit_at_5"], "mrr@10": m["mrr_at_10"],
               "bm25@5": m["bm25_hit_at_5"], "vec@5": m["vector_hit_at_5"], "p50ms": m["latency_p50_ms"]}
        rows.append(row)
        print(json.dumps(row), flush=True)
    mean = sum(r["semble_ndcg10"] for r in rows) / len(rows)
    print(json.dumps({"repos": len(rows), "mean_semble_ndcg10": mean}))


if __name__ == "__main__":
    sys.exit(main())
