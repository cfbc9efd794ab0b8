#!/usr/bin/env bash
# The experiments behind docs/results.md, at the budget used there (2-core CPU): 400 steps of 16 scenes,
# 150 validation scenes, 3 seeds, two runs at a time. Each experiment resumes where it stopped if re-run.
# Then: hamburger experiments report --results runs/experiments --out docs/results.md
set -euo pipefail
OUT=${OUT:-runs/experiments}
COMMON=(--steps 400 --val_scenes 150 --seeds 3 --jobs 2)
run() { name=$1; shift; echo "== $name $(date +%T)"; hamburger experiments run "$name" "${COMMON[@]}" --output "$OUT/$name" "$@"; }
run gradient
run context
run diagnostics --arms nmf
run spectrum --arms nmf
run eval_dictionary
run rank --arms r1 r4 r16 r64
run steps --arms K1 K6 K12
run inv_temp --arms vq-t10 vq-t100 cd-t10 cd-t100
echo "== done $(date +%T)"
