#!/usr/bin/env bash
# The experiments behind docs/results.md, at the budget used there (2-core CPU, about an hour): the context scenes'
# 1000 steps of 16 scenes (400 steps learned nothing yet: every arm ~13 mIoU), 150 validation scenes, 3 seeds, two
# runs at a time. Arms that another experiment already trains (the tiny_ham default: NMF, implicit gradient, r=16,
# K=6) are not repeated. Each experiment resumes where it stopped when re-run. Then:
#   hamburger experiments report --results runs/experiments --out docs/results.md
set -euo pipefail
OUT=${OUT:-runs/experiments}
COMMON=(--steps 1000 --val_scenes 150 --seeds 3 --jobs 2)
run() { name=$1; shift; echo "== $name $(date +%T)"; hamburger experiments run "$name" "${COMMON[@]}" --output "$OUT/$name" "$@"; }
run gradient --arms nmf-one_step nmf-bptt nmf-truncated3 nmf-implicit3 vq-one_step vq-implicit3 cd-one_step \
  cd-implicit3
run context --arms ham-nmf none identity_ham gap sdpa linear em
run diagnostics --arms nmf
run spectrum --arms nmf
run steps --arms K6 K1-bptt
run rank --arms r4 r64
run inv_temp --arms vq-t10 cd-t10
run eval_dictionary --arms online learned
run context --arms self_attention ham-vq ham-cd
run gradient --arms vq-bptt cd-bptt
echo "== done $(date +%T)"
