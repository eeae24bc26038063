#!/usr/bin/env python3
"""Copies crates from the local cargo registry into one folder, as a large corpus for
`codeq bench coverage` (docs/BENCH.md): crates in name order, skipping any with more
than --max-crate-bytes of files, until the copies hold --files .rs/.py files.

The registry holds what `cargo build` fetched for codeq, so the corpus is the same on
every machine that built the same Cargo.lock. Nothing is downloaded.

    scripts/registry-corpus.py OUT [--files 10000] [--max-crate-bytes 1500000]
"""

import argparse
import os
import shutil
import sys
from pathlib import Path

SOURCE_SUFFIXES = (".rs", ".py")


def crate_dirs(registry: Path):
    """Every unpacked crate folder of every registry index, by crate folder name."""
    dirs = [d for index in sorted(registry.glob("*")) if index.is_dir() for d in index.iterdir()]
    return sorted((d for d in dirs if d.is_dir()), key=lambda d: d.name)


def files_of(crate: Path):
    """(regular files, their total bytes, how many are .rs/.py) of one crate folder."""
    files, total, sources = [], 0, 0
    for dirpath, _, names in os.walk(crate):
        for name in names:
            path = Path(dirpath) / name
            if path.is_symlink() or not path.is_file():
                continue
            files.append(path)
            total += path.stat().st_size
            sources += name.endswith(SOURCE_SUFFIXES)
    return files, total, sources


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--files", type=int, default=10_000, help=".rs/.py files to reach")
    parser.add_argument("--max-crate-bytes", type=int, default=1_500_000)
    parser.add_argument(
        "--registry",
        type=Path,
        default=Path(os.environ.get("CARGO_HOME", Path.home() / ".cargo")) / "registry" / "src",
    )
    args = parser.parse_args()
    if args.out.exists():
        print(f"{args.out} exists; remove it or choose another folder", file=sys.stderr)
        return 2
    crates = sources = files = 0
    for crate in crate_dirs(args.registry):
        if sources >= args.files:
            break
        paths, size, crate_sources = files_of(crate)
        if size > args.max_crate_bytes or crate_sources == 0:
            continue
        for path in paths:
            target = args.out / crate.name / path.relative_to(crate)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
        crates += 1
        sources += crate_sources
        files += len(paths)
    if sources < args.files:
        print(f"the registry holds only {sources} .rs/.py files in crates under the size limit",
              file=sys.stderr)
        return 1
    print(f"{args.out}: {crates} crates, {sources} .rs/.py files among {files} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
