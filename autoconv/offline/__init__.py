"""Offline work: everything done ahead of time, or about what was done, rather than per call.

:mod:`~autoconv.offline.warm` pre-tunes lists of signatures (resumable, sharded), from the
suite of real workloads (:mod:`~autoconv.catalogue.suite`), a shapes file
(:mod:`~autoconv.offline.shapes_file`) or a model's recorded calls
(:mod:`~autoconv.offline.recording`); :mod:`~autoconv.offline.report` draws what the database
knows; :mod:`~autoconv.offline.progress` is the command line's progress bar.
"""
