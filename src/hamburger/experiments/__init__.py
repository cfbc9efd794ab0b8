"""Experiments of issue 13 (the runner, registry and report live here; see the experiments helper's modules)."""
