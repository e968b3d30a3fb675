"""A release of N small images through DVC and S3: the sharded format against the per-file tree.

Builds one release tree of N small PNGs (data/fused's layout and manifest), writes its shards with
the project's own writer (fuse.format: shards), then, for each format in its own DVC repository:
`dvc add` (hashing), a no-op `dvc status`, `dvc push` to a real S3 protocol server (moto, started
here on 127.0.0.1) and `dvc pull` into a fresh clone with an empty cache. Both formats run in the
same process on the same machine; the ratios are per-file time / shards time.

    python benchmarks/bench_release.py --n 100000      # the target size (small images)
    python benchmarks/bench_release.py --n 20000 --jobs 8

Prints one line per step and format, then the ratios; writes benchmarks/results/release_<n>.json.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _project import RESULTS, make_source, write_result  # noqa: E402

from rebalance.core import manifest  # noqa: E402
from rebalance.dataset import shards  # noqa: E402

SPLIT = ["train"] * 7 + ["val", "test"]  # image i goes to SPLIT[i % 9]


def release_tree(root: Path, n: int, size: int) -> tuple[Path, Path]:
    """root/files (data/fused's per-file layout + manifest.csv) and root/shards_release (the
    same images as shards + manifest.csv)."""
    source = root / "source"
    make_source(source, n, size, [0.5, 0.3, 0.2])
    files_dir, rows, files = root / "files", [], {}
    for i, f in enumerate(sorted(source.rglob("*.png"))):
        path = f"{SPLIT[i % 9]}/{f.parent.name}/{f.name}"
        (files_dir / path).parent.mkdir(parents=True, exist_ok=True)
        os.link(f, files_dir / path)
        files[path] = files_dir / path
        digest = hashlib.sha256(f.read_bytes()).hexdigest()
        rows.append(manifest.row(path=path, split=SPLIT[i % 9], label=f.parent.name, origin="real",
                                 source=path, root=path, sha256=digest))  # fmt: skip
    fused = manifest.frame(rows)
    manifest.write(fused, files_dir / "manifest.csv")
    sharded_dir = root / "shards_release"
    manifest.write(shards.write(fused, files, sharded_dir, shard_mb=256), sharded_dir / "manifest.csv")
    return files_dir, sharded_dir


def sh(cmd: list[str], cwd: Path, env: dict) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed in {cwd}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return time.perf_counter() - start


def dvc_repo(folder: Path, tree: Path, url: str, env: dict) -> Path:
    folder.mkdir(parents=True)
    for cmd in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"]):
        sh(cmd, folder, env)
    dvc = [sys.executable, "-m", "dvc", "remote"]
    sh([*dvc, "add", "-d", "s3", url], folder, env)
    sh([*dvc, "modify", "s3", "endpointurl", env["S3_ENDPOINT"]], folder, env)
    shutil.move(str(tree), folder / "fused")
    return folder


def measure(name: str, tree: Path, work: Path, url: str, env: dict, jobs: int) -> dict[str, float]:
    repo = dvc_repo(work / name, tree, url, env)
    dvc = [sys.executable, "-m", "dvc"]
    files = sum(1 for p in (repo / "fused").rglob("*") if p.is_file())
    out = {"files": files, "add_s": sh([*dvc, "add", "-q", "fused"], repo, env)}
    out["status_s"] = sh([*dvc, "status", "-q"], repo, env)
    out["push_s"] = sh([*dvc, "push", "-q", "-j", str(jobs)], repo, env)
    clone = work / f"{name}_clone"  # a consumer: git files only, empty cache
    clone.mkdir()
    shutil.copytree(repo / ".dvc", clone / ".dvc", ignore=shutil.ignore_patterns("cache", "tmp"))
    shutil.copy2(repo / "fused.dvc", clone / "fused.dvc")
    sh(["git", "init", "-q"], clone, env)
    out["pull_s"] = sh([*dvc, "pull", "-q", "-j", str(jobs)], clone, env)
    for step in ("add_s", "status_s", "push_s", "pull_s"):
        print(f"{name:>6} {step[:-2]:>6}: {out[step]:8.1f} s  ({files} files)", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000, help="images in the release")
    ap.add_argument("--size", type=int, default=32, help="image side in pixels")
    ap.add_argument("--jobs", type=int, default=4 * (os.cpu_count() or 1), help="dvc push/pull -j")
    a = ap.parse_args()

    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per S3 request
    work = Path(tempfile.mkdtemp(prefix="bench_release_"))
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    creds = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
             "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip
    env = {**os.environ, **creds, "DVC_NO_ANALYTICS": "1", "S3_ENDPOINT": endpoint,
           "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@example.com",
           "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@example.com"}  # fmt: skip
    boto3.client("s3", endpoint_url=endpoint, **{k.lower(): v for k, v in creds.items() if "KEY" in k},
                 region_name="us-east-1").create_bucket(Bucket="bench")  # fmt: skip
    try:
        start = time.perf_counter()
        files_tree, shard_tree = release_tree(work / "tree", a.n, a.size)
        took = time.perf_counter() - start
        print(f"release of {a.n} images ({a.size} px PNG) built in {took:.1f} s", flush=True)
        results = {
            "shards": measure("shards", shard_tree, work, "s3://bench/shards", env, a.jobs),
            "files": measure("files", files_tree, work, "s3://bench/files", env, a.jobs),
        }
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    ratios = {step: results["files"][step] / max(results["shards"][step], 1e-9)
              for step in ("add_s", "status_s", "push_s", "pull_s")}  # fmt: skip
    push_pull = (results["files"]["push_s"] + results["files"]["pull_s"]) / (
        results["shards"]["push_s"] + results["shards"]["pull_s"]
    )
    for step, r in ratios.items():
        print(f"files / shards {step[:-2]:>6}: {r:6.1f}x")
    print(f"files / shards push+pull: {push_pull:.1f}x (target >= 10x)")
    RESULTS.mkdir(exist_ok=True)
    record = {"n": a.n, "size": a.size, "jobs": a.jobs, "cores": os.cpu_count(), **results,
              "ratio": ratios, "push_pull_ratio": push_pull}  # fmt: skip
    write_result(RESULTS / f"release_{a.n}.json", record)


if __name__ == "__main__":
    main()
