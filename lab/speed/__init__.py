"""The speed lab: peers' task loops against metazoo's executors, and the project's speed targets.

Runs from a checkout, never from an installed metazoo: ``python -m lab.speed --help``
(docs/speed.md). What a user times on their own hardware is ``metazoo speed LEARNER BENCHMARK``
(:mod:`metazoo.bench.speed`), which the lab's learner contenders reuse.

* :mod:`~lab.speed.shapes`: the timed problem shapes, synthetic episodes and models;
* :mod:`~lab.speed.loops`: the peers' loops (plain PyTorch, ``higher``, learn2learn);
* :mod:`~lab.speed.contender`: what a contender is;
* :mod:`~lab.speed.contenders`: every implementation behind one interface;
* :mod:`~lab.speed.learners`: every registered learner as a contender;
* :mod:`~lab.speed.runner`: float64 pre-check, interleaved timing rounds
  (timing and memory: :mod:`metazoo.bench.timing`);
* :mod:`~lab.speed.targets`: issue 7's targets; :mod:`~lab.speed.report`:
  result files and tables; :mod:`~lab.speed.docs`: the generated docs sections;
* :mod:`~lab.speed.cli`: the command line.

Beside it, scripts run as files (``python lab/speed/<script>.py``): ``cpu_speed`` and
``cpu_layout`` (CPU runs of the lab), ``executor_choice``, ``fp32_spread``, ``profile_step``,
``conv_lowering`` and ``sampler_speed``.
"""
