"""Synthesis methods. Each fills part of a class's train deficit from train-split real images.

A method is a class built once per run from the `Context` (`methods.prepare(name, ctx)`), holding
what it prepares on first use (a trained model, a lesion bank, per-class source lists), with:

- `generate(label, indices) -> list[manifest row]`: writes one file per index under
  `ctx.out_dir / "train" / label /` (paths as they will be in data/fused);
- `cache_key(label, index) -> str`: everything that determines image `index` (method params,
  source checksum, seed, model checksum, ...). The synthesize stage stores it as `key` in the
  row's `detail` JSON and, on the next run, hard-links the old file instead of regenerating it
  for every index whose path, key and sha256 still match.

Modules: `base` (Context, seeds, output paths), `methods` (name -> class), `plugins` (installed
generators: entry points `rebalance.generators`), `reuse` (taking over the last run's images),
`speed` (measured seconds per image), one module per method (`lesion_edit`, `diffusion`, `gan`,
`command`) with its helpers
(`overlay`, `bank`, `blend`, `sources`, `detector`; `diffusion_core`, `diffusion_sd`, `prompts`,
`inpaint`; `gan_core`), the generators' training (`diffusion_core`, `gan_core`, `sd_lora_core`) and
the record of what they saw (`provenance`), and the offline quality checks of stage assess
(`quality`, `quality_plots`).
"""
