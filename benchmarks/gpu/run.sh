#!/usr/bin/env bash
# Run ON the GPU machine (device tool), from the repository root, with benchmarks/gpu/carry carried:
#   run(command="bash benchmarks/gpu/run.sh", carry=["benchmarks/gpu/carry"], timeout_s=540)
# Uses the image's Python (jax with CUDA, flax, optax, orbax, tokenizers, transformers already there), installs only
# the carried wheels, then runs speed.py --preset paper and host_overhead.py within ~8 minutes; every log and JSON
# goes to $OUT (committed afterwards under benchmarks/results/gpu/).
set -uo pipefail
OUT="${OUT:-benchmarks/results/gpu}"
mkdir -p "$OUT"
PY="${PY:-python3}"
exec > >(tee "$OUT/run.log") 2>&1
date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
"$PY" -m pip install -q --no-index --no-deps --find-links benchmarks/gpu/carry/wheels ml-collections rdflib isodate
export PYTHONPATH="$PWD/benchmarks/gpu/carry/stub:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export RELIK_JAX_COMPILATION_CACHE="$OUT/xla-cache"
"$PY" -c "import jax, flax; print('jax', jax.__version__, 'flax', flax.__version__, jax.devices())"
# each step bounded, so one slow step cannot eat the others' time
timeout "${SPEED_S:-330}" "$PY" benchmarks/speed.py --preset paper --out "$OUT" 2>&1 | tee "$OUT/speed-paper.log"
echo "speed.py exit ${PIPESTATUS[0]}"
timeout "${HOST_S:-150}" "$PY" benchmarks/host_overhead.py --docs 60 --repeats 3 --out "$OUT/host_overhead.json" 2>&1 \
  | tee "$OUT/host_overhead.log"
echo "host_overhead.py exit ${PIPESTATUS[0]}"
date -u
