#!/usr/bin/env python3
"""A local OpenAI-compatible chat endpoint for codeq's `[llm]`: llama.cpp's own server, from
the PyPI wheel xllamacpp, on a GGUF model that `scripts/setup.sh --llm` (or `--llm-small`)
installed.

Run it with the Python of the venv setup made (`$CODEQ_HOME/llm/venv/bin/python`). It binds
127.0.0.1 only, prints one line `listening http://127.0.0.1:PORT` on stdout once the model is
loaded (the caller waits for it), and serves until SIGTERM or SIGINT. codeq then talks to
`http://127.0.0.1:PORT/v1` like to any other endpoint.

Usage: llm-server.py --model FILE.gguf [--port N] [--ctx N] [--threads N] [--parallel N]
"""

import argparse
import os
import signal
import sys
import threading


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="the GGUF file")
    parser.add_argument("--port", type=int, default=8089, help="port on 127.0.0.1")
    parser.add_argument("--ctx", type=int, default=4096,
                        help="context window per request (sources + reply)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--parallel", type=int, default=1,
                        help="requests decoded at once (each gets --ctx)")
    args = parser.parse_args()
    if not os.path.isfile(args.model):
        print(f"llm-server: no model at {args.model}; run `make llm` (or "
              "`scripts/setup.sh --llm`) first", file=sys.stderr)
        return 2
    try:
        import xllamacpp
    except ImportError:
        print("llm-server: xllamacpp is not installed in this Python; run it with "
              "$CODEQ_HOME/llm/venv/bin/python after `make llm`", file=sys.stderr)
        return 2

    params = xllamacpp.CommonParams()
    params.model.path = args.model
    params.hostnames = ["127.0.0.1"]
    params.port = args.port
    params.n_parallel = args.parallel
    params.n_ctx = args.ctx * args.parallel
    params.cpuparams.n_threads = args.threads
    params.cpuparams_batch.n_threads = args.threads
    # Greedy decoding unless a request asks otherwise; codeq sends temperature 0.
    params.sampling.temp = 0.0
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server = xllamacpp.Server(params)
    print(f"listening {server.listening_address}", flush=True)
    stop.wait()
    del server
    return 0


if __name__ == "__main__":
    sys.exit(main())
