"""Shared helpers of the external eval runners: where the public eval data lives and how a
pinned revision of a fetched repository is checked out (outside the project)."""
import pathlib
import subprocess

EVALDATA = pathlib.Path(__file__).resolve().parents[2] / "shared" / "evaldata"


def checkout(bare, rev, dest):
    """Extracts `rev` of the bare git dir `bare` into `dest` unless `dest` already exists."""
    if dest.exists():
        return False
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "--git-dir", str(bare), "archive", rev], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return True
