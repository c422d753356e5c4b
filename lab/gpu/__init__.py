"""Scripts run on a GPU machine from a checkout (``python lab/gpu/<script>.py``): the speed check,
the GPU session, the paper rows of the GPU presets and the Triton kernel inspection. Each has a
``--dry-run`` (or a CPU rehearsal) that its tests in ``tests/lab`` run."""
