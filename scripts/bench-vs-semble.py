#!/usr/bin/env python3
"""codeq beside semble on one corpus, in one run, the two tools alternating.

Prints, with the ratio codeq/semble:
- full index including vectors (process wall, a new index each time) and, for codeq, the
  time until BM25 answers (its own "queryable now" report; semble answers only when done);
- warm query p50/p95: in-process (semble's `SembleIndex.search`; codeq's engine time, the
  `timings_ms.total` a search reports, or the sum of its stages for builds without it) and round trip through each tool's MCP server on stdio
  (one process, the same queries);
- a cold query from the command line (a new process per query);
- the index on disk, peak RSS while indexing and RSS of the warm MCP server.

semble 0.7.0 and its dependencies are installed into a venv under --work from PyPI, every
wheel checked by sha256 (`scripts/bench-peers.requirements.txt`); its model is the static
potion-base-8M that `scripts/setup.sh` installs (sha256-checked) for codeq's own A/B, since
semble's default model is only on a model hub. Nothing here runs in CI.

Queries are drawn from the corpus itself, the same for both tools: names of functions
defined in it (symbol queries) and the first lines of doc comments (descriptions).

Usage: scripts/bench-vs-semble.py CORPUS [--codeq BIN] [--work DIR] [--rounds N] [--queries N]
"""

import argparse
import json
import os
import pathlib
import random
import re
import shutil
import statistics
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
REQUIREMENTS = HERE / "bench-peers.requirements.txt"
CODEQ_HOME = pathlib.Path(os.environ.get("CODEQ_HOME", pathlib.Path.home() / ".cache" / "codeq"))
DEFAULT_MODEL = CODEQ_HOME / "models" / "potion-base-8m"
SOURCE_SUFFIXES = {".rs", ".py", ".go", ".ts", ".js", ".java", ".c", ".h", ".cc", ".cpp", ".rb", ".kt", ".cs"}

# Runs inside the venv: semble's own API, timed in-process.
SEMBLE_WORKER = r"""
import json, sys, time
from pathlib import Path
from semble.index import SembleIndex
from semble.cache import find_index_from_cache_folder, save_index_to_cache
command, corpus = sys.argv[1], sys.argv[2]
if command == "index":
    index = SembleIndex.from_path(corpus)
    save_index_to_cache(index, corpus)
    print(json.dumps({"chunks": len(index.chunks)}))
else:
    queries = json.loads(sys.stdin.read())
    index = SembleIndex.load_from_disk(find_index_from_cache_folder(corpus))
    rounds = int(sys.argv[3])
    for q in queries:
        index.search(q, top_k=10)
    times = []
    for _ in range(rounds):
        for q in queries:
            started = time.perf_counter()
            index.search(q, top_k=10)
            times.append((time.perf_counter() - started) * 1000)
    print(json.dumps({"ms": times}))
"""


def log(message):
    print(f"bench-vs-semble: {message}", file=sys.stderr, flush=True)


def ensure_venv(work):
    """The venv with semble 0.7.0, from PyPI wheels checked by sha256."""
    venv = work / "venv"
    python = venv / "bin" / "python"
    marker = venv / "requirements.sha"
    wanted = REQUIREMENTS.read_bytes()
    if python.exists() and marker.exists() and marker.read_bytes() == wanted:
        return venv
    log(f"installing semble 0.7.0 into {venv} (pinned wheels, sha256-checked)")
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--only-binary=:all:",
                    "--require-hashes", "-r", str(REQUIREMENTS)], check=True)
    marker.write_bytes(wanted)
    return venv


def sample_queries(corpus, count, seed=7):
    """Function names and first doc-comment lines of the corpus, `count` of each."""
    names, docs = set(), set()
    definition = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?(?:async\s+)?(?:fn|def|func)\s+([A-Za-z_]\w{3,})")
    doc = re.compile(r"^\s*(?:///|#|//|\*)\s*([A-Z][a-z]+(?: [A-Za-z`_-]+){3,9})[.:]?\s*$")
    for path in sorted(corpus.rglob("*")):
        if path.suffix not in SOURCE_SUFFIXES or not path.is_file():
            continue
        previous = ""
        for line in path.read_text(errors="replace").splitlines():
            if m := definition.match(line):
                names.add(m.group(1))
            if (m := doc.match(line)) and not doc.match(previous):
                docs.add(m.group(1).replace("`", ""))
            previous = line
    rng = random.Random(seed)
    pick = lambda pool: rng.sample(sorted(pool), min(count, len(pool)))
    return pick(names) + pick(docs)


def run_timed(command, env=None, stdin=None):
    """(wall seconds, stdout) of a child process that must succeed."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(stdin)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{command[0]} failed ({proc.returncode}): {err[-500:]}")
    return wall, out


def peak_rss_of(command, env=None):
    """Wall seconds, peak RSS (bytes) and stderr of `command`, via wait4."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    # Read both pipes to the end without a deadlock, then reap with wait4 for the rusage.
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{command[0]} failed ({proc.returncode}): {err.decode(errors='replace')[-500:]}")
    return wall, usage.ru_maxrss * 1024, out.decode(errors="replace"), err.decode(errors="replace")


def dir_bytes(path):
    """Bytes of the files under `path`, a file hard-linked twice counted once (as `du` does)."""
    seen, total = set(), 0
    for f in pathlib.Path(path).rglob("*"):
        if f.is_file() and not f.is_symlink():
            st = f.stat()
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def rss_now(pid):
    try:
        for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


class Mcp:
    """One MCP server process on stdio, newline-delimited JSON-RPC."""

    def __init__(self, command, env=None):
        self.proc = subprocess.Popen(command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        self.next_id = 0
        self.call("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                 "clientInfo": {"name": "bench-vs-semble", "version": "1"}})
        self.notify("notifications/initialized")

    def notify(self, method):
        self.proc.stdin.write(json.dumps({"jsonrpc": "2.0", "method": method}) + "\n")
        self.proc.stdin.flush()

    def call(self, method, params):
        self.next_id += 1
        self.proc.stdin.write(json.dumps({"jsonrpc": "2.0", "id": self.next_id, "method": method,
                                          "params": params}) + "\n")
        self.proc.stdin.flush()
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("the MCP server closed its output")
            message = json.loads(line)
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"MCP error: {message['error']}")
                return message["result"]

    def close(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Codeq:
    name = "codeq"

    def __init__(self, binary, corpus, work):
        self.binary, self.corpus = binary, corpus
        self.index_dir = work / "codeq-index"
        self.env = dict(os.environ)

    def index(self):
        shutil.rmtree(self.index_dir, ignore_errors=True)
        wall, rss, _, err = peak_rss_of([self.binary, "index", str(self.corpus), "--index-dir",
                                         str(self.index_dir)], env=self.env)
        found = re.search(r"queryable now \(([\d.]+)s\)", err)
        return {"full_s": wall, "queryable_s": float(found.group(1)) if found else None, "index_rss": rss,
                "size": dir_bytes(self.index_dir)}

    def warm(self, queries, rounds):
        mcp = Mcp([self.binary, "mcp", "--index-dir", str(self.index_dir)], env=self.env)
        search = lambda q: mcp.call("tools/call", {"name": "search", "arguments": {"query": q, "k": 10}})
        for q in queries:
            search(q)
        trips, engine = [], []
        for _ in range(rounds):
            for q in queries:
                started = time.perf_counter()
                result = search(q)
                trips.append((time.perf_counter() - started) * 1000)
                if result.get("isError"):
                    raise RuntimeError(f"codeq search failed: {result['content'][0]['text']}")
                timings = result["structuredContent"]["timings_ms"]
                engine.append(timings["total"] if "total" in timings else sum(timings.values()))
        rss = rss_now(mcp.proc.pid)
        mcp.close()
        return {"in_process_ms": engine, "round_trip_ms": trips, "server_rss": rss}

    def cold_query(self, query):
        wall, _ = run_timed([self.binary, "search", query, "-k", "10", "--json", "--index-dir",
                                      str(self.index_dir)], env=self.env)
        return wall * 1000


class Semble:
    name = "semble"

    def __init__(self, venv, model, corpus, work):
        self.python = str(venv / "bin" / "python")
        self.cli = str(venv / "bin" / "semble")
        self.corpus = corpus
        self.cache = work / "semble-cache"
        self.env = dict(os.environ, SEMBLE_MODEL_NAME=str(model), SEMBLE_CACHE_LOCATION=str(self.cache),
                        HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")

    def index(self):
        shutil.rmtree(self.cache, ignore_errors=True)
        wall, rss, _, _ = peak_rss_of([self.python, "-c", SEMBLE_WORKER, "index", str(self.corpus)], env=self.env)
        return {"full_s": wall, "queryable_s": wall, "index_rss": rss, "size": dir_bytes(self.cache)}

    def warm(self, queries, rounds):
        _, out = run_timed([self.python, "-c", SEMBLE_WORKER, "warm", str(self.corpus), str(rounds)],
                                    env=self.env, stdin=json.dumps(queries))
        in_process = json.loads(out)["ms"]
        mcp = Mcp([self.cli], env=self.env)
        search = lambda q: mcp.call("tools/call", {"name": "search", "arguments": {
            "query": q, "repo": str(self.corpus), "top_k": 10}})
        for q in queries:
            search(q)
        trips = []
        for _ in range(rounds):
            for q in queries:
                started = time.perf_counter()
                search(q)
                trips.append((time.perf_counter() - started) * 1000)
        rss = rss_now(mcp.proc.pid)
        mcp.close()
        return {"in_process_ms": in_process, "round_trip_ms": trips, "server_rss": rss}

    def cold_query(self, query):
        wall, _ = run_timed([self.cli, "search", query, str(self.corpus), "-k", "10"], env=self.env)
        return wall * 1000


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", type=pathlib.Path)
    parser.add_argument("--codeq", default=str(CODEQ_HOME / "target" / "release" / "codeq"))
    parser.add_argument("--work", type=pathlib.Path, default=CODEQ_HOME / "bench-peers")
    parser.add_argument("--model", type=pathlib.Path, default=DEFAULT_MODEL,
                        help="semble's model folder (default: potion-base-8M from scripts/setup.sh)")
    parser.add_argument("--rounds", type=int, default=2, help="cold index runs per tool, warm query rounds")
    parser.add_argument("--queries", type=int, default=30, help="symbol queries, and as many descriptions")
    parser.add_argument("--json", type=pathlib.Path, help="also write every measurement here")
    args = parser.parse_args()

    corpus = args.corpus.resolve()
    if not (args.model / "model.safetensors").is_file():
        sys.exit(f"bench-vs-semble: no static model in {args.model}; run scripts/setup.sh first")
    if not os.access(args.codeq, os.X_OK):
        sys.exit(f"bench-vs-semble: {args.codeq} is not executable; build it with `cargo build --release`")
    args.work.mkdir(parents=True, exist_ok=True)
    venv = ensure_venv(args.work)
    tools = [Codeq(args.codeq, corpus, args.work), Semble(venv, args.model, corpus, args.work)]
    queries = sample_queries(corpus, args.queries)
    log(f"{len(queries)} queries from {corpus}")

    runs = {t.name: {"index": [], "warm": [], "cold_ms": []} for t in tools}
    for round_no in range(args.rounds):
        for tool in (tools if round_no % 2 == 0 else tools[::-1]):
            log(f"round {round_no + 1}: {tool.name} index")
            runs[tool.name]["index"].append(tool.index())
    for round_no in range(args.rounds):
        for tool in (tools if round_no % 2 == 0 else tools[::-1]):
            log(f"round {round_no + 1}: {tool.name} warm queries")
            runs[tool.name]["warm"].append(tool.warm(queries, 1))
    log("cold command-line queries")
    for i, q in enumerate(queries):
        for tool in (tools if i % 2 == 0 else tools[::-1]):
            runs[tool.name]["cold_ms"].append(tool.cold_query(q))

    def figures(name):
        r = runs[name]
        warm = lambda key: [ms for w in r["warm"] for ms in w[key]]
        median = lambda key: statistics.median(x[key] for x in r["index"])
        return {
            "full index incl. vectors (s)": median("full_s"),
            "BM25-queryable from launch (s)": median("queryable_s"),
            "warm p50, in-process / engine (ms)": percentile(warm("in_process_ms"), 50),
            "warm p95, in-process / engine (ms)": percentile(warm("in_process_ms"), 95),
            "warm p50, MCP round trip (ms)": percentile(warm("round_trip_ms"), 50),
            "warm p95, MCP round trip (ms)": percentile(warm("round_trip_ms"), 95),
            "cold CLI query p50 (ms)": percentile(r["cold_ms"], 50),
            "index on disk (MB)": median("size") / 1e6,
            "peak RSS indexing (MB)": median("index_rss") / 1e6,
            "RSS warm MCP server (MB)": statistics.median(w["server_rss"] or 0 for w in r["warm"]) / 1e6,
        }

    ours, theirs = figures("codeq"), figures("semble")
    commit = subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    print(f"corpus {corpus}, {len(queries)} queries, {args.rounds} rounds, {time.strftime('%Y-%m-%d')}, "
          f"codeq {commit}, semble 0.7.0 + {args.model.name}\n")
    print("| metric | semble | codeq | codeq/semble |")
    print("| --- | --- | --- | --- |")
    for metric in ours:
        a, b = theirs[metric], ours[metric]
        ratio = f"{b / a:.2f}×" if a else "–"
        print(f"| {metric} | {a:.2f} | {b:.2f} | {ratio} |")
    if args.json:
        args.json.write_text(json.dumps({"queries": queries, "runs": runs, "codeq": ours, "semble": theirs},
                                        indent=1))


if __name__ == "__main__":
    main()
