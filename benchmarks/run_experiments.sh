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
run gradient --arms nmf-one_step nmf-bptt nmf-truncated3 nmf-implicit3 vq-one_step vq-bptt vq-truncated3 \
  vq-implicit3 cd-one_step cd-bptt cd-truncated3 cd-implicit3
run context --arms ham-nmf ham-vq ham-cd none identity_ham gap self_attention sdpa em linear
run diagnostics --arms nmf
run spectrum --arms nmf
run steps --arms K3 K6
run rank --arms r4 r64
run inv_temp --arms vq-t10 cd-t10
run eval_dictionary --arms random online learned
# not run for docs/results.md yet ("Not measured yet" there)
run steps --arms K1-bptt K3 K6 K12
run rank --arms r1 r4 r8 r16 r32 r64
run inv_temp --arms vq-t1 vq-t10 vq-t100 vq-t1000 cd-t1 cd-t10 cd-t100 cd-t1000
echo "== done $(date +%T)"
