"""Prediction: the best strategy for signatures never measured, learned from measurements.

:mod:`~autoconv.prediction.features` turns a (signature, candidate) pair into numbers;
:mod:`~autoconv.prediction.predictor` fits and applies the model (and says when it is sure);
:mod:`~autoconv.prediction.tree_ensemble` evaluates it fast and stores it without pickle;
:mod:`~autoconv.prediction.training_data` reads what it learns from out of the database;
:mod:`~autoconv.prediction.model_cache` keeps fitted models between processes;
:mod:`~autoconv.prediction.service` is the per-device predictor the selector asks;
:mod:`~autoconv.prediction.grid` is the training grid ``autoconv warm --grid`` measures and
:mod:`~autoconv.prediction.evaluation` cross-validates the model against its baselines.
"""
