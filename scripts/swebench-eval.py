#!/usr/bin/env python3
"""Runs the SWE-bench-derived items of ../shared/evaldata through `codeq eval`.

Each item is a GitHub issue (the question) and the files its merged fix changed that existed
at the base commit (the gold). Per repository, the items' base commits are visited oldest
first: the commit is extracted from a fetched bare git dir into WORK/NAME (the same folder
each time) and indexed into WORK/NAME.codeq, so vectors of unchanged chunks are reused from
the previous commit's generation. Each commit's items become a codeq question set, run with
`codeq eval --json -k 10`, and are scored by file Acc@k (every gold file in the top k, the
metric published for SWE-bench Lite retrieval) besides hit@k and MRR@10. Not part of CI: it
needs fetched corpora.

usage: scripts/swebench-eval.py --codeq BIN --work DIR [--set python|rust] OWNER/NAME=BARE_GIT_DIR [...]
"""
import argparse, ast, json, pathlib, shutil, subprocess, sys

from evaldata import EVALDATA, checkout

SETS = {"python": "swebench-python.jsonl", "rust": "multiswebench-rust.jsonl"}


def commit_time(bare, commit):
    out = subprocess.run(["git", "--git-dir", str(bare), "log", "-1", "--format=%ct", commit],
                         capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


def question_set(name, items):
    lines = [f'name = "{name}"', 'tier = "monitoring"', ""]
    for item in items:
        gold = [f"*:{f}" for f in item["gold"]]
        text = json.dumps(item["question"].replace("\x7f", ""), ensure_ascii=False)
        lines += ["[[question]]", f'id = "{item["id"]}"', f"question = {text}",
                  f"relevant = {json.dumps(gold)}", ""]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--codeq", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--set", choices=sorted(SETS), action="append")
    ap.add_argument("repos", nargs="+", help="OWNER/NAME=BARE_GIT_DIR")
    args = ap.parse_args()
    work = pathlib.Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    items = []
    for s in args.set or sorted(SETS):
        for line in open(EVALDATA / SETS[s]):
            item = json.loads(line)
            gold = item["gold_files"]
            item["gold"] = ast.literal_eval(gold) if isinstance(gold, str) else gold
            items.append(item)
    rows = []
    for spec in args.repos:
        repo, bare = spec.split("=", 1)
        mine = [i for i in items if i["repo"] == repo and i["gold"]]
        if not mine:
            print(f"no items for {repo}", file=sys.stderr)
            continue
        name = repo.split("/")[1]
        root, index_dir = work / name, work / f"{name}.codeq"
        commits = sorted({i["commit"] for i in mine}, key=lambda c: commit_time(bare, c))
        for commit in commits:
            if root.exists():
                shutil.rmtree(root)
            checkout(bare, commit, root)
            subprocess.run([args.codeq, "index", str(root), "--index-dir", str(index_dir)],
                           check=True, stdout=subprocess.DEVNULL)
            batch = [i for i in mine if i["commit"] == commit]
            set_file = work / f"swebench-{name}-{commit[:12]}.toml"
            set_file.write_text(question_set(f"swebench-{name}", batch))
            out = subprocess.run([args.codeq, "eval", str(set_file), "--index-dir", str(index_dir),
                                  "--json", "-k", "10"], capture_output=True, text=True)
            report = json.loads(out.stdout)["report"]
            by_id = {q["id"]: q for q in report["sets"][0]["questions"]}
            for item in batch:
                q = by_id[item["id"]]
                files = [f.split(":", 1)[1] for f in q["files"]]
                found = lambda k: [g for g in item["gold"] if g in files[:k]]
                rows.append({"repo": repo, "id": item["id"], "gold": len(item["gold"]),
                             "acc@1": len(found(1)) == len(item["gold"]),
                             "acc@5": len(found(5)) == len(item["gold"]),
                             "acc@10": len(found(10)) == len(item["gold"]),
                             "first_hit": q["first_hit"],
                             "bm25_first": q.get("lane_first_hit", [None] * 3)[0],
                             "vector_first": q.get("lane_first_hit", [None] * 3)[1]})
                print(json.dumps(rows[-1]), flush=True)
    summary = {}
    for repo in sorted({r["repo"] for r in rows}) + ["all"]:
        rs = [r for r in rows if repo in ("all", r["repo"])]
        mean = lambda f: round(sum(f(r) for r in rs) / len(rs), 3)
        rank_at = lambda key, k: mean(lambda r: (r[key] or 99) <= k)
        mrr = lambda key: mean(lambda r: 1 / r[key] if r[key] and r[key] <= 10 else 0)
        summary[repo] = {"items": len(rs), "acc@1": mean(lambda r: r["acc@1"]),
                         "acc@5": mean(lambda r: r["acc@5"]), "acc@10": mean(lambda r: r["acc@10"]),
                         "hit@1": rank_at("first_hit", 1), "hit@5": rank_at("first_hit", 5),
                         "mrr@10": mrr("first_hit"), "bm25 hit@5": rank_at("bm25_first", 5),
                         "vector hit@5": rank_at("vector_first", 5)}
    print(json.dumps({"summary": summary}))


if __name__ == "__main__":
    sys.exit(main())
