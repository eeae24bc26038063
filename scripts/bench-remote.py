#!/usr/bin/env python3
"""codeq with its index on local disk beside the same index in an S3 bucket (a SeaweedFS
`weed mini` on loopback, the one `scripts/setup.sh` installs), on one corpus, in one run.

Prints:
- full index including vectors, process wall: to a local folder, to the bucket with one
  worker, and to the bucket with two `--shard` workers at once (separate CODEQ_HOMEs, as
  on two machines; how often a worker lost the race to publish and built again);
- bytes the bucket holds after each, and bytes a new reader downloads to answer its first
  query (its mirror);
- a query from the command line (a new process each, as an agent's shell call): wall and
  engine time (`timings_ms.total`), against the local folder and against the bucket from
  a machine whose mirror is current (each call reads the bucket's CURRENT once), and the
  first query of a new reader (it fetches the generation).

CORPUS must be a folder of git repositories (sharding splits repositories). Every index is
built cold: new index folders and new CODEQ_HOMEs (with the installed model and runtime
linked in), so no embedding cache helps. Nothing here runs in CI.

Usage: scripts/bench-remote.py CORPUS [--codeq BIN] [--work DIR] [--queries N]
"""

import argparse
import json
import os
import pathlib
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

CODEQ_HOME = pathlib.Path(os.environ.get("CODEQ_HOME", pathlib.Path.home() / ".cache" / "codeq"))
WEED = pathlib.Path(os.environ.get("CODEQ_WEED", CODEQ_HOME / "seaweedfs" / "weed"))
BUCKET = "codeq"
ACCESS_KEY = "codeq-bench"
SECRET = "codeq-bench-secret"


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def start_weed(work):
    data = work / "weed-data"
    data.mkdir()
    p = free_ports(11)
    names = ["s3.port", "s3.port.grpc", "master.port", "master.port.grpc", "filer.port",
             "filer.port.grpc", "volume.port", "volume.port.grpc", "debug.port", "admin.port",
             "admin.port.grpc"]
    args = [str(WEED), "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-bucket={BUCKET}", "-admin.ui=false", "-webdav=false", "-s3.port.iceberg=0",
            "-s3.port.lance=0", "-volume.max=8", "-master.telemetry=false"]
    args += [f"-{name}={port}" for name, port in zip(names, p)]
    env = dict(os.environ, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET)
    log = open(work / "weed.log", "w")
    child = subprocess.Popen(args, env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    return child, f"http://127.0.0.1:{p[0]}", data


def aws_env(endpoint):
    return {"AWS_ENDPOINT_URL": endpoint, "AWS_ALLOW_HTTP": "true", "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET}


def new_home(work, name):
    """A CODEQ_HOME of its own (a machine), with the installed model and runtime."""
    home = work / name
    home.mkdir()
    for asset in ["models", "ort"]:
        (home / asset).symlink_to(CODEQ_HOME / asset)
    return home


def codeq(binary, home, args, endpoint=None, cwd=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.pop("CODEQ_INDEX_DIR", None)
    env["CODEQ_HOME"] = str(home)
    if endpoint:
        env.update(aws_env(endpoint))
    return subprocess.Popen([str(binary), *args], env=env, cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(process, what):
    out, err = process.communicate()
    if process.returncode != 0:
        sys.exit(f"{what} failed ({process.returncode}):\n{err}")
    return out, err


def wait_for_bucket(binary, work, endpoint):
    home = new_home(work, "probe")
    deadline = time.time() + 60
    while time.time() < deadline:
        p = codeq(binary, home, ["status", "--index-dir", f"s3://{BUCKET}/probe"], endpoint)
        _, err = p.communicate()
        if "no codeq index is published here" in err:
            return
        time.sleep(0.5)
    sys.exit(f"weed mini did not serve the bucket within 60 s; see {work / 'weed.log'}")


def timed_index(binary, home, corpus, index_dir, endpoint=None, shard=None):
    args = ["index", str(corpus), "--index-dir", index_dir, "--json"]
    if shard:
        args += ["--shard", shard]
    return codeq(binary, home, args, endpoint), time.perf_counter()


def size_of(path):
    return sum(f.stat().st_size for f in pathlib.Path(path).rglob("*") if f.is_file())


def queries_of(corpus, n):
    names = []
    for path in sorted(pathlib.Path(corpus).rglob("*")):
        if path.suffix in {".go", ".py", ".ex", ".rs"} and path.is_file() and ".git" not in path.parts:
            text = path.read_text(errors="replace")
            names += re.findall(r"(?:func|def|fn) (?:\([^)]*\) )?([A-Za-z_]\w{5,})", text)
    step = max(1, len(names) // n)
    return names[::step][:n]


def query_times(binary, home, index_dir, queries, endpoint=None, cwd=None):
    wall, engine = [], []
    for q in queries:
        started = time.perf_counter()
        out, _ = finish(codeq(binary, home, ["search", q, "--index-dir", index_dir, "--json"],
                              endpoint, cwd), f"search {q!r}")
        wall.append((time.perf_counter() - started) * 1e3)
        engine.append(json.loads(out).get("timings_ms", {}).get("total", float("nan")))
    return wall, engine


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus", type=pathlib.Path)
    parser.add_argument("--codeq", type=pathlib.Path,
                        default=pathlib.Path(os.environ.get("CARGO_TARGET_DIR", "target")) / "release" / "codeq")
    parser.add_argument("--work", type=pathlib.Path)
    parser.add_argument("--queries", type=int, default=20)
    args = parser.parse_args()
    if not WEED.is_file():
        sys.exit(f"SeaweedFS is not installed at {WEED}: run scripts/setup.sh")
    work = args.work or pathlib.Path(tempfile.mkdtemp(prefix="codeq-bench-remote-"))
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    corpus = args.corpus.resolve()
    weed, endpoint, data = start_weed(work)
    rows = []
    try:
        wait_for_bucket(args.codeq, work, endpoint)
        base_bytes = size_of(data)

        local_home = new_home(work, "local")
        local_index = str(work / "local-index")
        p, t0 = timed_index(args.codeq, local_home, corpus, local_index)
        out, _ = finish(p, "local index")
        local_s = time.perf_counter() - t0
        chunks = json.loads(out)["index"]["totals"]["chunks"]
        rows.append(("index, local folder", f"{local_s:.1f} s", f"{chunks / local_s:.1f} chunks/s"))

        one_home = new_home(work, "one-worker")
        p, t0 = timed_index(args.codeq, one_home, corpus, f"s3://{BUCKET}/one", endpoint)
        finish(p, "one worker")
        one_s = time.perf_counter() - t0
        one_bytes = size_of(data) - base_bytes
        rows.append(("index, bucket, 1 worker", f"{one_s:.1f} s", f"{chunks / one_s:.1f} chunks/s"))

        started = time.perf_counter()
        workers = [timed_index(args.codeq, new_home(work, f"shard-{i}"), corpus,
                               f"s3://{BUCKET}/two", endpoint, f"{i}/2")[0] for i in range(2)]
        outs = [finish(w, f"shard {i}/2") for i, w in enumerate(workers)]
        two_s = time.perf_counter() - started
        reports = [json.loads(o)["index"] for o, _ in outs]
        final = max(reports, key=lambda r: r["generation"])
        # Every attempt claims the next generation name: two when nobody lost a race.
        lost = int(final["generation"][1:]) - 2
        rows.append(("index, bucket, 2 shard workers", f"{two_s:.1f} s",
                     f"{final['totals']['chunks'] / two_s:.1f} chunks/s, {lost} lost races"))
        rows.append(("bucket bytes after 1 worker", f"{one_bytes / 1e6:.1f} MB",
                     f"local index {size_of(local_index) / 1e6:.1f} MB"))

        queries = queries_of(corpus, args.queries)
        reader_home = new_home(work, "reader")
        started = time.perf_counter()
        finish(codeq(args.codeq, reader_home, ["search", queries[0], "--index-dir",
                                                f"s3://{BUCKET}/one", "--json"], endpoint, work),
               "first remote search")
        first_ms = (time.perf_counter() - started) * 1e3
        mirror = size_of(reader_home / "remote")
        rows.append(("first query of a new reader", f"{first_ms:.0f} ms",
                     f"downloads {mirror / 1e6:.1f} MB (its mirror)"))
        for label, home, index_dir, env in [
            ("query, local folder", local_home, local_index, None),
            ("query, bucket (mirror current)", reader_home, f"s3://{BUCKET}/one", endpoint),
        ]:
            query_times(args.codeq, home, index_dir, queries[:3], env, work)  # warm the page cache
            wall, engine = query_times(args.codeq, home, index_dir, queries, env, work)
            rows.append((label, f"p50 {statistics.median(wall):.0f} ms wall",
                         f"engine p50 {statistics.median(engine):.1f} ms, {len(queries)} queries"))
    finally:
        weed.terminate()
        weed.wait()
    print(f"corpus {corpus} ({chunks} chunks); codeq {args.codeq}")
    for what, figure, note in rows:
        print(f"{what:<34} {figure:>14}   {note}")


if __name__ == "__main__":
    main()
