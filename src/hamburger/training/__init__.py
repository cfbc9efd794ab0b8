"""The training core shared by the recipes (segmentation, generation).

Generic pieces every Lightning recipe needs: crash-safe checkpoint files and one run per checkpoint folder
(:mod:`.checkpoint`), deterministic resumable samplers and loaders with per-sample seeding (:mod:`.sampling`), the
training RNG stream across checkpoints (:mod:`.rng`), optimiser parameter groups and warmup-poly schedules
(:mod:`.optim`) and the training-curve callback (:mod:`.curves`). Nothing here knows about a task;
``hamburger.recipes.seg`` and ``hamburger.recipes.gan`` build on it. Lightning is imported by the modules that
need it, so ``import hamburger.training`` stays light.
"""
