"""The speed lab: peers' task loops against metazoo's executors, and the project's speed targets.

Runs from a checkout, never from an installed metazoo: ``python -m benchmarks.speedlab --help``
(docs/speed.md). What a user times on their own hardware is ``metazoo speed LEARNER BENCHMARK``
(:mod:`metazoo.bench.speed`), which the lab's learner contenders reuse.

* :mod:`~benchmarks.speedlab.shapes`: the timed problem shapes, synthetic episodes and models;
* :mod:`~benchmarks.speedlab.loops`: the peers' loops (plain PyTorch, ``higher``, learn2learn);
* :mod:`~benchmarks.speedlab.contender`: what a contender is;
* :mod:`~benchmarks.speedlab.contenders`: every implementation behind one interface;
* :mod:`~benchmarks.speedlab.learners`: every registered learner as a contender;
* :mod:`~benchmarks.speedlab.runner`: float64 pre-check, interleaved timing rounds
  (timing and memory: :mod:`metazoo.bench.timing`);
* :mod:`~benchmarks.speedlab.targets`: issue 7's targets; :mod:`~benchmarks.speedlab.report`:
  result files and tables; :mod:`~benchmarks.speedlab.docs`: the generated docs sections;
* :mod:`~benchmarks.speedlab.cli`: the command line.
"""
