"""Stage fuse: data/fused/{train,val,test}/<class>/ and its manifest, linked, not copied."""

from __future__ import annotations

import pandas as pd

from stages.core import atomic, manifest, params as params_mod, paths
from stages.core.errors import RebalanceError, run_main


def main() -> None:
    params = params_mod.load()
    real = manifest.read(paths.COUNTED / manifest.FILENAME)
    files = {f"{r.split}/{r.path}": paths.RAW / r.path for r in real.itertuples()}
    real = real.assign(path=[f"{r.split}/{r.path}" for r in real.itertuples()])
    parts = [real]
    for folder in (paths.SYNTHESIZED, paths.FLIPPED):
        df = manifest.read(folder / manifest.FILENAME)
        files.update({p: folder / p for p in df.path})
        parts.append(df)
    fused = pd.concat(parts, ignore_index=True)
    duplicated = fused.path[fused.path.duplicated()]
    if not duplicated.empty:
        raise RebalanceError(
            f"fuse: two files would land at data/fused/{duplicated.iloc[0]}; rename the raw file"
        )
    problems = manifest.check_invariants(fused, params["fuse"]["synthetic_in_eval"])
    if problems:
        raise RebalanceError(f"fuse: {len(problems)} leakage problems, first: {problems[0]}")
    with atomic.output_dir(paths.FUSED) as out:
        for path, src in files.items():
            atomic.link_or_copy(src, out / path)
        manifest.write(fused, out / manifest.FILENAME)
    counts = manifest.nested_counts(fused, ["split", "label", "origin"])
    atomic.write_json(paths.FUSED_COUNTS, counts)
    print(
        f"fuse: {len(fused)} files; "
        + ", ".join(f"{s} {int((fused.split == s).sum())}" for s in ("train", "val", "test"))
    )


if __name__ == "__main__":
    run_main(main)
