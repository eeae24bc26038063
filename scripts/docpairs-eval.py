#!/usr/bin/env python3
"""Runs the doc-comment → function pairs (../shared/evaldata/docpairs.jsonl) through `codeq eval`.

For each repo: checks out the pinned commit from a fetched bare git dir into WORK/NAME
(outside the project), blanks every line listed in the items' `doc_lines` (keeping line
numbers) so lexical search cannot match the doc text itself, indexes the copy, and reports
file hit@1/hit@5, MRR@10 and symbol hit@5 from `codeq eval --json -k 10`. Not part of CI.

usage: scripts/docpairs-eval.py --codeq BIN --work DIR OWNER/NAME=BARE_GIT_DIR [...]
"""
import argparse, json, pathlib, subprocess, sys

from evaldata import EVALDATA, checkout




def blank_doc_lines(dest, items):
    ranges = {}
    for item in items:
        for path, spans in item["doc_lines"].items():
            ranges.setdefault(path, []).extend(spans)
    for path, spans in ranges.items():
        file = dest / path
        lines = file.read_text(encoding="utf-8", errors="surrogateescape").split("\n")
        for start, end in spans:
            for i in range(start - 1, min(end, len(lines))):
                lines[i] = ""
        file.write_text("\n".join(lines), encoding="utf-8", errors="surrogateescape")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--codeq", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("repos", nargs="+", help="OWNER/NAME=BARE_GIT_DIR")
    args = ap.parse_args()
    items = [json.loads(l) for l in open(EVALDATA / "docpairs.jsonl")]
    for spec in args.repos:
        repo, bare = spec.split("=", 1)
        mine = [i for i in items if i["repo"] == repo]
        name = repo.split("/")[1]
        dest = pathlib.Path(args.work) / f"docpairs-{name}"
        if checkout(bare, mine[0]["commit"], dest) is not None:
            blank_doc_lines(dest, mine)
        lines = [f'name = "docpairs-{name}"', 'tier = "monitoring"', ""]
        for item in mine:
            symbols = [f.split("::", 1)[1] for f in item["gold_functions"]]
            lines += ["[[question]]", f'id = "{item["id"].rsplit(":", 1)[1]}"',
                      f"question = {json.dumps(item['question'])}",
                      f"relevant = {json.dumps(['*:' + f for f in item['gold_files']])}",
                      f"symbols = {json.dumps(symbols)}", ""]
        set_file = pathlib.Path(args.work) / f"docpairs-{name}.toml"
        set_file.write_text("\n".join(lines))
        subprocess.run([args.codeq, "index", str(dest)], check=True, stdout=subprocess.DEVNULL)
        out = subprocess.run([args.codeq, "eval", str(set_file), "--index-dir", str(dest / ".codeq"),
                              "--json", "-k", "10"], capture_output=True, text=True)
        m = json.loads(out.stdout)["report"]["overall"]
        print(json.dumps({"repo": repo, "items": len(mine), "hit@1": m["hit_at_1"], "hit@5": m["hit_at_5"],
                          "mrr@10": m["mrr_at_10"], "symbol_hit@5": m["symbol_hit_at_5"],
                          "bm25@5": m["bm25_hit_at_5"], "vec@5": m["vector_hit_at_5"],
                          "p50ms": m["latency_p50_ms"]}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
