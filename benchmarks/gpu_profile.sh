#!/usr/bin/env bash
# The GPU numbers in the README, on a CUDA machine, from the repository root:
#
#   bash benchmarks/gpu_profile.sh bench OUT      # classifier, diffusion training, sampler vs bare loops
#   bash benchmarks/gpu_profile.sh pipeline OUT   # the GPU profile through `dvc exp run` (log + metrics in OUT)
#
# `pipeline` runs the README's GPU profile on the demo. The step counts can be shortened for a
# time-limited machine (TRAIN_STEPS, SEEDS, DIFFUSION_STEPS): images/s does not depend on them.
# Without TRAIN_PRETRAINED the backbone starts from random weights (same speed as ImageNet's).
set -euo pipefail
what=${1:?bench or pipeline}
out=${2:?output folder}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 DVC_NO_ANALYTICS=1

if [ "$what" = bench ]; then  # the GPU profile's models: resnet50 at 224 px, the UNet at 64 px
  python benchmarks/bench_diffusion_train.py --device cuda --resolution 64 --channels 64 128 256 \
    --layers-per-block 2 --batch 64 --steps 100 --out "$out/diffusion_train_64.json"
  python benchmarks/bench_classifier.py --device cuda --backbone resnet50 --size 224 --steps 100 \
    --batch-size 64 --out "$out/classifier_resnet50_224.json"
  python benchmarks/bench_sampling.py --device cuda --model none --resolution 64 --channels 64 128 256 \
    --layers-per-block 2 --n 512 --batch 256 --steps 25 --out "$out/sampling_64.json"
  python benchmarks/bench_classifier.py --device cuda --backbone small_cnn --size 64 --steps 300 \
    --batch-size 64 --out "$out/classifier_small_cnn_64.json"
  exit 0
fi

pretrained=()
[ -n "${TRAIN_PRETRAINED:-}" ] && pretrained=(-S "train.pretrained=$TRAIN_PRETRAINED")
start=$(date +%s)
# each output line prefixed with the seconds since the start: when each stage began and ended
dvc exp run -S compute.device=cuda -S compute.workers=8 -S train.backbone=resnet50 "${pretrained[@]}" \
  -S train.image_size=224 -S "train.steps=${TRAIN_STEPS:-3000}" -S train.eval_every=50 \
  -S train.batch_size=64 -S train.lr=0.0003 -S "train.seeds=${SEEDS:-[0,1,2,3,4]}" \
  -S generators.diffusion.resolution=64 -S "generators.diffusion.steps=${DIFFUSION_STEPS:-20000}" \
  -S "generators.diffusion.channels=[64,128,256]" -S generators.diffusion.layers_per_block=2 \
  -S generators.diffusion.batch_size=64 -S generators.diffusion.lr=0.0002 \
  -S generators.gan.resolution=64 -S generators.gan.channels=64 -S generators.gan.steps=20000 -S generators.gan.batch_size=64 \
  2>&1 | while IFS= read -r line; do printf '%5d %s\n' $(($(date +%s) - start)) "$line"; done | tee "$out/pipeline.log"
cp -r metrics "$out/metrics"
