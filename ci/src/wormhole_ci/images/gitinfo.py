"""The commit a source tree is at, read with git: SHA, commit time, and whether it is dirty."""

from __future__ import annotations

import contextlib
import datetime as dt
import subprocess
from pathlib import Path

from wormhole_ci.errors import ImageError
from wormhole_ci.images.spec import Revision, check_sha

_TIMEOUT = 30.0
# The monorepo's changes, minus our own logs and reports (they would make every run dirty).
_STATUS = ("status", "--porcelain", "--untracked-files=normal", "--", ".", ":(exclude).wormhole-ci")


def _git(root: Path, *args: str) -> str:
    try:
        done = subprocess.run(
            ["git", "-C", str(root), *args],
            capture_output=True,
            text=True,
            timeout=_TIMEOUT,
            check=False,
        )
    except FileNotFoundError:
        raise ImageError("git is not installed; install git or pass --tag SHA") from None
    if done.returncode != 0:
        raise ImageError(
            f"{root} is not inside a git work tree with a commit "
            f"({done.stderr.strip().splitlines()[-1] if done.stderr.strip() else 'git failed'}); "
            "pass --tag SHA"
        )
    return done.stdout.strip()


def revision(root: Path, explicit_sha: str | None = None) -> Revision:
    """HEAD of the repository holding `root` (or `explicit_sha`); dirty counts only `root`."""
    if explicit_sha:
        sha = check_sha(explicit_sha)
        committed: str | None = None
        dirty = False
        # a SHA from elsewhere (CI) need not be in this clone, nor the source in a clone at all
        with contextlib.suppress(ImageError):
            committed = _iso_utc(_git(root, "show", "-s", "--format=%ct", sha))
        with contextlib.suppress(ImageError):
            dirty = bool(_git(root, *_STATUS))
        return Revision(sha=sha, committed=committed, dirty=dirty)
    sha = _git(root, "rev-parse", "HEAD")
    committed = _iso_utc(_git(root, "show", "-s", "--format=%ct", "HEAD"))
    status = _git(root, *_STATUS)
    return Revision(sha=check_sha(sha), committed=committed, dirty=bool(status))


def _iso_utc(epoch: str) -> str:
    return dt.datetime.fromtimestamp(int(epoch), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
