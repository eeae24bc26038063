#!/usr/bin/env python3
"""Runs Semble's code-search suite (../shared/evaldata) through codeq, on both paths.

For every repo of semble-repos.json (or those named with --only / --language): checks out
the pinned revision from the fetched bare git dir MIRRORS/OWNER+NAME/repo into WORK/NAME
(outside the project), indexes its benchmark root into WORK/NAME.LABEL.codeq and scores
NDCG@10 exactly as Semble's published scorer does (binary relevance over relevant +
secondary, suffix path match, ideal = min(10, #targets), mean per repo, unweighted mean over
repos):
- search, chunk level: `codeq search` through one `codeq mcp` process, the top 10 chunks as
  they are, a span target hit only by a chunk whose lines overlap it;
- ask, file level: `codeq eval --json -k 10` (files deduped, first occurrence).

Resumable: each finished repo is appended to WORK/results.LABEL.jsonl and skipped on the
next run (--fresh re-scores); a repo left out (no checkout, or no index with --no-index) is
tried again. A repo that cannot be checked out (not fetched, pinned
revision missing from the snapshot) is reported and left out of every mean; with --unpinned a
snapshot without the pinned revision is measured at its HEAD instead, and said so.

Prints per-repo, per-language and per-category (semantic / architecture / symbol) tables
for both paths beside the peers' published numbers (semble-peers.csv); --compare LABEL adds
the difference to another build's results, on the repos both have.
Not part of CI: it needs fetched corpora.

usage: scripts/semble-eval.py --codeq BIN --work DIR [--label L] [--index-label L] [--only A,B]
       [--language go,java] [--fresh] [--compare LABEL] [--markdown FILE]
       [--seed-from LABEL] [--model-dir DIR] [--no-index] [--unpinned]
"""
import argparse, csv, json, math, pathlib, shutil, subprocess, sys, time

from evaldata import EVALDATA, checkout, has_revision, head_revision

CATEGORIES = ("semantic", "architecture", "symbol")
PEERS = ("semble", "coderankembed-hybrid", "semble-bm25-only")


def hit(result, target):
    result, target = result.replace("\\", "/"), target.replace("\\", "/")
    return result == target or result.endswith("/" + target) or target.endswith("/" + result)


def target_path(t):
    return t if isinstance(t, str) else t["path"]


def ndcg(ranked, targets, is_hit):
    """Semble's NDCG@10: each target's first hit in the top 10 counts 1/log2(rank+1)."""
    dcg = 0.0
    for t in targets:
        rank = next((i + 1 for i, r in enumerate(ranked[:10]) if is_hit(r, t)), None)
        if rank:
            dcg += 1 / math.log2(rank + 1)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(10, len(targets))))
    return dcg / ideal if ideal else 0.0


def chunk_hit(chunk, target):
    if not hit(chunk["path"], target_path(target)):
        return False
    if isinstance(target, str):
        return True
    return chunk["start_line"] <= target["end_line"] and target["start_line"] <= chunk["end_line"]


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
        result = call(i, "tools/call", {"name": "search", "arguments": {"query": q, "k": 10}}).get("result", {})
        out.append([] if result.get("isError") else result["structuredContent"]["results"])
    proc.stdin.close()
    proc.wait()
    return out


def bare_dir(mirrors, meta):
    owner_name = meta["url"].removeprefix("https://github.com/").removesuffix(".git")
    return pathlib.Path(mirrors) / owner_name.replace("/", "+") / "repo"


def run_repo(args, meta, tasks):
    """Indexes one repo and scores its tasks on both paths; returns its result record."""
    name = meta["name"]
    work = pathlib.Path(args.work)
    dest = work / name
    bare = bare_dir(args.mirrors, meta)
    revision = meta["revision"]
    if args.unpinned and not has_revision(bare, revision):
        revision = head_revision(bare) or revision
        dest = work / f"{name}@{revision[:12]}"
    try:
        absent = checkout(bare, revision, dest)
        if absent:
            print(f"{name}: {len(absent)} files absent from the snapshot, e.g. {absent[0]}", file=sys.stderr)
    except (subprocess.CalledProcessError, FileNotFoundError) as e:
        detail = getattr(e, "stderr", None) or str(e)
        why = (detail.decode(errors="replace") if isinstance(detail, bytes) else detail).strip().splitlines()[-1]
        return {"repo": name, "language": meta["language"], "skipped": f"checkout failed: {why}"}
    root_rel = (meta.get("benchmark_root") or "").strip("/")
    root = dest / root_rel if root_rel else dest
    prefix = root_rel + "/" if root_rel else ""
    strip = lambda p: p[len(prefix):] if prefix and p.startswith(prefix) else p
    targets = lambda t: [strip(target_path(x)) if isinstance(x, str) else dict(x, path=strip(x["path"]))
                         for x in t["relevant"] + t.get("secondary", [])]
    lines = [f'name = "semble-{name}"', 'tier = "monitoring"', ""]
    for t in tasks:
        rel = [f"*:{strip(target_path(x))}" for x in t["relevant"]]
        sec = [f"*:{strip(target_path(x))}" for x in t.get("secondary", [])]
        lines += ["[[question]]", f'id = "{t["idx"]}"', f"question = {json.dumps(t['query'])}",
                  f"relevant = {json.dumps(rel)}", f"secondary = {json.dumps(sec)}", ""]
    set_file = work / f"semble-{name}.toml"
    set_file.write_text("\n".join(lines))
    index_dir = work / f"{name}.{args.index_label or args.label}.codeq"
    seed = work / f"{name}.{args.seed_from}.codeq" if args.seed_from else None
    if seed and seed.is_dir() and not index_dir.exists():
        shutil.copytree(seed, index_dir, symlinks=True)
    model = ["--model-dir", args.model_dir] if args.model_dir else []
    started = time.monotonic()
    command = [args.codeq, "index", str(root), "--index-dir", str(index_dir), "--json", *model]
    if args.no_index:
        # Never build an index here: another run may be building this one right now.
        if not index_dir.is_dir():
            return {"repo": name, "language": meta["language"], "skipped": f"no index {index_dir.name}"}
        command = [args.codeq, "status", "--index-dir", str(index_dir)]
    indexed = subprocess.run(command, capture_output=True, text=True)
    if indexed.returncode != 0:
        return {"repo": name, "language": meta["language"], "skipped": f"index failed: {indexed.stderr[-300:]}"}
    index_s = time.monotonic() - started
    out = subprocess.run([args.codeq, "eval", str(set_file), "--index-dir", str(index_dir), "--json", "-k", "10"],
                         capture_output=True, text=True)
    evaluated = json.loads(out.stdout)["report"]
    by_id = {q["id"]: q for q in evaluated["sets"][0]["questions"]}
    lanes = {lane: evaluated["overall"][f"{lane}_hit_at_5"] for lane in ("bm25", "vector", "hybrid")}
    found = search_all(args.codeq, index_dir, [t["query"] for t in tasks])
    scored = []
    for t, chunks in zip(tasks, found):
        files = [f.split(":", 1)[1] for f in by_id[str(t["idx"])]["files"]]
        file_targets = [target_path(x) for x in targets(t)]
        scored.append({"idx": t["idx"], "category": t["category"],
                       "search": ndcg(chunks, targets(t), chunk_hit),
                       "ask": ndcg(files, file_targets, hit)})
    record = {"repo": name, "language": meta["language"], "index_s": round(index_s, 1), "lanes": lanes,
              "tasks": scored}
    if revision != meta["revision"]:
        record["unpinned"] = revision
    return record


def load(path):
    if not path.exists():
        return {}
    return {r["repo"]: r for r in map(json.loads, path.read_text().splitlines()) if r}


def mean(xs):
    xs = list(xs)
    return sum(xs) / len(xs) if xs else None


def repo_score(record, path, category=None):
    return mean(t[path] for t in record["tasks"] if category in (None, t["category"]))


def fmt(x, signed=False):
    if x is None:
        return ""
    return f"{x:+.3f}" if signed else f"{x:.3f}"


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def report(results, peers, other):
    """Markdown tables: per repo, per language, per category, overall."""
    scored = [r for r in results if "tasks" in r]
    shared = [r for r in scored if r["repo"] in other and "tasks" in other[r["repo"]]]
    def peer(tool, repo, col="ndcg10"):
        value = peers.get((tool, repo), {}).get(col)
        return float(value) if value else None

    cmp_cols = ["Δsearch", "Δask"] if other else []
    repo_rows = []
    for r in sorted(scored, key=lambda r: (r["language"], r["repo"])):
        row = [r["repo"], r["language"], len(r["tasks"]), fmt(repo_score(r, "search")), fmt(repo_score(r, "ask"))]
        row += [fmt(peer(tool, r["repo"])) for tool in PEERS]
        if other:
            o = other.get(r["repo"])
            ok = o and "tasks" in o
            row += [fmt(repo_score(r, "search") - repo_score(o, "search"), True) if ok else "",
                    fmt(repo_score(r, "ask") - repo_score(o, "ask"), True) if ok else ""]
        row.append(r.get("index_s", ""))
        repo_rows.append(row)
    parts = ["### Per repository", table(["repo", "language", "tasks", "search", "ask", *PEERS, *cmp_cols, "index s"],
                                          repo_rows)]

    def group_rows(groups):
        rows = []
        for label, members in groups:
            row = [label, len(members), fmt(mean(repo_score(r, "search") for r in members)),
                   fmt(mean(repo_score(r, "ask") for r in members))]
            row += [fmt(mean(peer(t, r["repo"]) for r in members if peer(t, r["repo"]))) for t in PEERS]
            rows.append(row)
        return rows

    languages = sorted({r["language"] for r in scored})
    parts += ["### Per language (mean over its repositories)",
              table(["language", "repos", "search", "ask", *PEERS],
                    group_rows([(l, [r for r in scored if r["language"] == l]) for l in languages]))]
    cat_rows = []
    for c in CATEGORIES:
        has = [r for r in scored if any(t["category"] == c for t in r["tasks"])]
        row = [c, len(has), fmt(mean(repo_score(r, "search", c) for r in has)),
               fmt(mean(repo_score(r, "ask", c) for r in has))]
        row += [fmt(mean(peer(t, r["repo"], f"ndcg10_{c}") for r in has if peer(t, r["repo"], f"ndcg10_{c}")))
                for t in PEERS]
        cat_rows.append(row)
    parts += ["### Per category (mean over repositories that have it)",
              table(["category", "repos", "search", "ask", *PEERS], cat_rows)]
    overall = [["all", len(scored), fmt(mean(repo_score(r, "search") for r in scored)),
                fmt(mean(repo_score(r, "ask") for r in scored))]
               + [fmt(mean(peer(t, r["repo"]) for r in scored if peer(t, r["repo"]))) for t in PEERS]]
    parts += ["### Overall (unweighted mean over repositories)", table(["", "repos", "search", "ask", *PEERS], overall)]
    with_lanes = [r for r in scored if "lanes" in r]
    if with_lanes:
        lane = lambda name: fmt(mean(r["lanes"][name] for r in with_lanes))
        parts.append(f"Each lane alone, file hit@5 on the ask path ({len(with_lanes)} repositories): "
                     f"BM25 {lane('bm25')}, vectors {lane('vector')}, fused {lane('hybrid')}.")
    if other:
        delta = lambda path: mean(repo_score(r, path) - repo_score(other[r["repo"]], path) for r in shared)
        parts.append(f"Against the compared build on the {len(shared)} repositories both have: "
                     f"search {fmt(delta('search'), True)}, ask {fmt(delta('ask'), True)}.")
    unpinned = [r["repo"] for r in scored if "unpinned" in r]
    if unpinned:
        parts.append(f"Not at the suite's pinned revision ({len(unpinned)}: {', '.join(unpinned)}): each was "
                     "measured at its snapshot's HEAD, so its tasks may name code that has moved, and the "
                     "peers' numbers beside it are from another revision.")
    skipped = [r for r in results if "skipped" in r]
    if skipped:
        parts.append("Left out: " + "; ".join(f"{r['repo']} ({r['skipped'][:80]})" for r in skipped))
    return "\n\n".join(parts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--codeq", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--label", default="codeq", help="names this build's indexes and results")
    ap.add_argument("--index-label", help="reuse the indexes of this label (a ranking-only change)")
    ap.add_argument("--seed-from", help="start each new index as a copy of this label's (a chunker "
                    "change: the re-index reuses the vectors of unchanged chunks)")
    ap.add_argument("--model-dir", help="index with this model folder (a model A/B)")
    ap.add_argument("--no-index", action="store_true", help="query the --index-label indexes as "
                    "they are (a ranking change measured on indexes of another chunker); a repo "
                    "without one is left out, never indexed")
    ap.add_argument("--mirrors", default="/work/.mirror", help="where fetched bare git dirs live")
    ap.add_argument("--unpinned", action="store_true", help="a repo whose snapshot lacks the pinned "
                    "revision is measured at the snapshot's HEAD instead of left out (use its own --label: "
                    "the peers measured another revision)")
    ap.add_argument("--only", default="", help="comma-separated repo names")
    ap.add_argument("--language", default="", help="comma-separated languages")
    ap.add_argument("--fresh", action="store_true", help="re-score repos that already have results")
    ap.add_argument("--compare", help="another label whose results to compare with")
    ap.add_argument("--markdown", help="also write the tables to this file")
    args = ap.parse_args()
    work = pathlib.Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    repos = json.load(open(EVALDATA / "semble-repos.json"))
    only, langs = set(filter(None, args.only.split(","))), set(filter(None, args.language.split(",")))
    chosen = [m for m in repos if (not only or m["name"] in only) and (not langs or m["language"] in langs)]
    tasks = [json.loads(l) for l in open(EVALDATA / "semble-tasks.jsonl")]
    results_path = work / f"results.{args.label}.jsonl"
    done = {} if args.fresh else load(results_path)
    if args.fresh:
        kept = [r for r in load(results_path).values() if r["repo"] not in {m["name"] for m in chosen}]
        results_path.write_text("".join(json.dumps(r) + "\n" for r in kept))
    for meta in chosen:
        if "tasks" in done.get(meta["name"], {}):
            continue  # scored; a repo left out last time is tried again
        record = run_repo(args, meta, [t for t in tasks if t["repo"] == meta["name"]])
        with open(results_path, "a") as f:
            f.write(json.dumps(record) + "\n")
        done[meta["name"]] = record
        summary = record.get("skipped") or (f"search {fmt(repo_score(record, 'search'))} "
                                            f"ask {fmt(repo_score(record, 'ask'))} index {record['index_s']} s")
        print(f"{meta['name']}: {summary}", file=sys.stderr, flush=True)
    peers = {(row["tool"], row["repo"]): row for row in csv.DictReader(open(EVALDATA / "semble-peers.csv"))}
    other = load(work / f"results.{args.compare}.jsonl") if args.compare else {}
    text = report([done[m["name"]] for m in chosen if m["name"] in done], peers, other)
    print(text)
    if args.markdown:
        pathlib.Path(args.markdown).write_text(text + "\n")


if __name__ == "__main__":
    sys.exit(main())
