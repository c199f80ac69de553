"""One catalogue of real architectures: their conv1d layers as data, and models built from them.

Everything that needs "what real models run" reads it from here: ``autoconv warm --suite``,
the zoo's models, the held-out set of the predictor's benchmark, the benchmarks in
``scripts/`` and the tests.

* :mod:`~autoconv.catalogue.configs`: each model's published configuration, once.
* :mod:`~autoconv.catalogue.architectures`: one generator per architecture, yielding its
  layers' signatures at the sizes it is given.
* :mod:`~autoconv.catalogue.held_out`: the architectures at the sizes people run them at
  (:func:`~autoconv.catalogue.held_out.real_layers`: never in the training grid).
* :mod:`~autoconv.catalogue.workload`: :class:`~autoconv.catalogue.workload.Workload`, one
  named call as data.
* :mod:`~autoconv.catalogue.suite`: the suite of workloads (``warm --suite``, the suite
  benchmarks).
* :mod:`~autoconv.catalogue.ordinary`: ordinary short- and mid-kernel layers (the per-layer
  speed benchmark).
* :mod:`~autoconv.catalogue.zoo`: the models themselves, random weights.
"""
