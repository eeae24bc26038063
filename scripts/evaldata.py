"""Shared helpers of the external eval runners: where the public eval data lives and how a
pinned revision of a fetched repository is checked out (outside the project)."""
import os
import re
import pathlib
import subprocess
import tempfile

EVALDATA = pathlib.Path(__file__).resolve().parents[2] / "shared" / "evaldata"


def checkout(bare, rev, dest):
    """Writes the tree of `rev` of the bare git dir `bare` into `dest`; None if `dest` exists.

    Reads the tree into a scratch index and checks that out, so every tracked file arrives:
    `git archive` would honour `export-ignore` attributes and drop test and fixture folders
    that the benchmark's targets may point at. A snapshot may list its largest files without
    their contents; those are left out and their paths returned (a list, empty when
    nothing is absent). Raises CalledProcessError
    when `rev` is not in the snapshot or the checkout fails otherwise."""
    if dest.exists():
        return None
    _find_tree(bare, rev).check_returncode()
    with tempfile.TemporaryDirectory() as scratch:
        env = dict(os.environ, GIT_INDEX_FILE=str(pathlib.Path(scratch) / "index"))
        git = ["git", "--git-dir", str(bare)]
        subprocess.run(git + ["read-tree", rev], check=True, env=env, capture_output=True)
        dest.mkdir(parents=True)
        done = subprocess.run(git + ["checkout-index", "--all", "--force", f"--prefix={dest}/"],
                              env=env, capture_output=True, text=True)
    absent = re.findall(r"unable to read sha1 file of (.+) \(", done.stderr)
    other = [l for l in done.stderr.splitlines() if l and "unable to read sha1 file of" not in l]
    if done.returncode != 0 and (other or not absent):
        raise subprocess.CalledProcessError(done.returncode, done.args, stderr=done.stderr)
    return absent


def has_revision(bare, rev):
    """Whether the snapshot in the bare git dir `bare` holds the tree of `rev`."""
    return _find_tree(bare, rev).returncode == 0


def head_revision(bare):
    """The commit the snapshot's HEAD names, or None without one."""
    out = subprocess.run(["git", "--git-dir", str(bare), "rev-parse", "HEAD"], capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else None


def _find_tree(bare, rev):
    return subprocess.run(["git", "--git-dir", str(bare), "cat-file", "-e", f"{rev}^{{tree}}"],
                          capture_output=True)
