"""Tuning: choosing a strategy for a signature, by measuring it when nothing else knows.

:mod:`~autoconv.tuning.selector` is the one place that composes strategies, timing, the
database and the predictor (memory -> database -> prediction -> measurement); the rest are its
parts: :mod:`~autoconv.tuning.candidates` (what is timed, on which inputs, checked against
what), :mod:`~autoconv.tuning.trial` (one tuning run's budget, check and warm-up),
:mod:`~autoconv.tuning.timing` (interleaved, robust timing), :mod:`~autoconv.tuning.outcome`
(what is stored), :mod:`~autoconv.tuning.cost_model` (predicted seconds, for pruning and the
cold start) and :mod:`~autoconv.tuning.protocols` (what the selector needs injected).
"""
