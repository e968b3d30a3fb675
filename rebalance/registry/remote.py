"""DVC for the registry: opening the repository, the remote (choice, secrets, push and verify).

Credentials belong in the environment or `.dvc/config.local`, never in the tracked `.dvc/config`;
`safe_url` keeps a password out of anything the registry prints or writes.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from rebalance.core.errors import RebalanceError
from rebalance.registry.git import one_line

# Remote options that hold secrets; they belong in the environment or .dvc/config.local.
SECRET_KEYS = {
    "access_key_id",
    "secret_access_key",
    "session_token",
    "password",
    "account_key",
    "sas_token",
    "connection_string",
    "client_secret",
    "gdrive_client_secret",
    "token",
    "key_secret",
    "key_id",
    "passphrase",
    "oss_key_secret",
    "oss_key_id",
}


def open_repo(root: Path):
    """The DVC repository at `root` (a context manager); a folder without `.dvc` is refused."""
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo

    try:
        return Repo(str(root))
    except NotDvcRepoError:
        raise RebalanceError(f"{root}: not a DVC repository; run from the registry's root") from None


@contextlib.contextmanager
def quiet_dvc() -> Iterator[None]:
    """DVC (dvc, dvc_data, dvc_objects) logs each failed transfer; the release reports one line."""
    before = logging.root.manager.disable
    logging.disable(logging.ERROR)
    try:
        yield
    finally:
        logging.disable(before)


def safe_url(url: str) -> str:
    """A remote URL without any password in it."""
    parts = urlsplit(str(url))
    if parts.password is None:
        return str(url)
    host = parts.hostname or ""
    netloc = f"{parts.username}@{host}" if parts.username else host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def tracked_secrets(repo_config: dict[str, Any]) -> list[str]:
    """`remote.option` names in the repository's tracked config that hold credentials."""
    found = []
    for name, opts in (repo_config.get("remote") or {}).items():
        for key, value in opts.items():
            if value in (None, "", False):
                continue
            if key in SECRET_KEYS or (key == "url" and urlsplit(str(value)).password):
                found.append(f"{name}.{key}")
    return found


def check_no_tracked_secrets(repo) -> None:
    """Refuse a release while the tracked `.dvc/config` holds a credential."""
    found = tracked_secrets(repo.config.load_one("repo"))
    if found:
        raise RebalanceError(
            f"credentials in tracked .dvc/config ({', '.join(found)}); move them to the "
            "environment or `dvc remote modify --local`, and out of git history"
        )


def choose_remote(repo, remote: str | None, default: str | None) -> str:
    """The remote to release to: the one asked for, else `release.remote`, else DVC's default."""
    remote = remote or default or repo.config["core"].get("remote")
    if not remote:
        raise RebalanceError("no DVC remote configured; `dvc remote add -d NAME URL` (see README)")
    if remote not in repo.config["remote"]:
        raise RebalanceError(f"DVC remote {remote!r} is not configured; see `dvc remote list`")
    return remote


def remote_url(repo, remote: str) -> str:
    """The configured URL of a remote ("" if it has none)."""
    return repo.config["remote"][remote].get("url", "")


def push_and_verify(repo, remote: str, tag: str) -> int:
    """Push every output of the workspace and the run cache; then the remote must hold them all."""
    try:
        with quiet_dvc():
            pushed = repo.push(remote=remote, run_cache=True)
    except Exception as err:  # noqa: BLE001 - any failure of the push refuses the release
        # s3fs leaves coroutines behind when its endpoint is unreachable; Python warns at exit.
        warnings.filterwarnings("ignore", message="coroutine .* was never awaited", category=RuntimeWarning)
        raise RebalanceError(
            f"push to DVC remote {remote!r} failed ({one_line(err)}); no commit, no tag {tag}"
        ) from None
    try:
        with quiet_dvc():
            missing = repo.status(cloud=True, remote=remote)
    except Exception as err:  # noqa: BLE001
        raise RebalanceError(f"cannot verify DVC remote {remote!r} ({one_line(err)}); no tag {tag}") from None
    if missing:
        first = next(iter(missing))
        raise RebalanceError(
            f"DVC remote {remote!r} lacks {len(missing)} output(s) after push (first: {first}); no tag {tag}"
        )
    return int(pushed or 0)
