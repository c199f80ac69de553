"""autoconv's side of the tuning database: the store the selector reads and writes
(:mod:`~autoconv.storage.store`, over :mod:`tuning_db`) and this machine's fingerprint
(:mod:`~autoconv.storage.fingerprint`), under which every measurement is kept."""
