#!/usr/bin/env python3
"""Runs Semble's code-search tasks (../shared/evaldata) through codeq, on both paths.

For each named repo: checks out the pinned revision from a fetched bare git dir into
WORK/NAME (outside the project), indexes its benchmark root into WORK/NAME.LABEL.codeq,
and scores NDCG@10 exactly as Semble's published scorer does (binary relevance over
relevant + secondary, suffix path match, ideal = min(10, #targets), mean per repo):
- file level: the ask path, `codeq eval --json -k 10` (files deduped, first occurrence);
- chunk level: `codeq search` through one `codeq mcp` process, the top 10 chunks as they
  are, a span target hit only by a chunk whose lines overlap it.
Not part of CI: it needs fetched corpora. --label keeps indexes of different builds apart.

usage: scripts/semble-eval.py --codeq BIN --work DIR [--label L] NAME=BARE_GIT_DIR [...]
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


def chunk_hit(chunk, target, strip):
    if not hit(chunk["path"], strip(target_path(target))):
        return False
    if isinstance(target, str):
        return True
    return chunk["start_line"] <= target["end_line"] and target["start_line"] <= chunk["end_line"]


def chunk_ndcg(chunks, targets, strip):
    ranks = []
    for t in targets:
        rank = next((i + 1 for i, c in enumerate(chunks[:10]) if chunk_hit(c, t, strip)), None)
        if rank:
            ranks.append(rank)
    dcg = sum(1 / math.log2(r + 1) for r in ranks)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(10, len(targets))))
    return dcg / ideal if ideal else 0.0


def search_all(codeq, index_dir, queries):
    """Top-10 chunk lists for `queries` from one `codeq mcp` process."""
    proc = subprocess.Popen([codeq, "mcp", "--index-dir", str(index_dir)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    def call(i, method, params):
        proc.stdin.write(json.dumps({"jsonrpc": "2.0", "id": i, "method": method, "params": params}) + "\n")
        proc.stdin.flush()
        return json.loads(proc.stdout.readline())
    call(0, "initialize", {"protocolVersion": "2025-06-18", "capabilities": {}})
    out = []
    for i, q in enumerate(queries, 1):
        reply = call(i, "tools/call", {"name": "search", "arguments": {"query": q, "k": 10}})
        result = reply.get("result", {})
        out.append([] if result.get("isError") else result["structuredContent"]["results"])
    proc.stdin.close()
    proc.wait()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--codeq", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--label", default="codeq", help="names the index folder of this build")
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
        index_dir = pathlib.Path(args.work) / f"{name}.{args.label}.codeq"
        subprocess.run([args.codeq, "index", str(root), "--index-dir", str(index_dir)], check=True,
                       stdout=subprocess.DEVNULL)
        out = subprocess.run([args.codeq, "eval", str(set_file), "--index-dir", str(index_dir),
                              "--json", "-k", "10"], capture_output=True, text=True)
        report = json.loads(out.stdout)["report"]
        by_id = {q["id"]: q for q in report["sets"][0]["questions"]}
        ndcgs = []
        found = search_all(args.codeq, index_dir, [t["query"] for t in mine])
        chunk_ndcgs = [chunk_ndcg(chunks, t["relevant"] + t.get("secondary", []), strip)
                       for chunks, t in zip(found, mine)]
        for t in mine:
            files = [f.split(":", 1)[1] for f in by_id[str(t["idx"])]["files"]]
            targets = [strip(target_path(x)) for x in t["relevant"] + t.get("secondary", [])]
            ndcgs.append(semble_ndcg(files, targets))
        m = report["overall"]
        row = {"repo": name, "language": meta["language"], "tasks": len(mine),
               "semble_ndcg10": sum(ndcgs) / len(ndcgs),
               "search_chunk_ndcg10": sum(chunk_ndcgs) / len(chunk_ndcgs),
               "hit@1": m["hit_at_1"], "hit@5": m["hit_at_5"], "mrr@10": m["mrr_at_10"],
               "bm25@5": m["bm25_hit_at_5"], "vec@5": m["vector_hit_at_5"], "p50ms": m["latency_p50_ms"]}
        rows.append(row)
        print(json.dumps(row), flush=True)
    mean = sum(r["semble_ndcg10"] for r in rows) / len(rows)
    chunk_mean = sum(r["search_chunk_ndcg10"] for r in rows) / len(rows)
    print(json.dumps({"repos": len(rows), "mean_semble_ndcg10": mean,
                      "mean_search_chunk_ndcg10": chunk_mean}))


if __name__ == "__main__":
    sys.exit(main())
