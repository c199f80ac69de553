"""tuning_db: the persistent store of autoconv's measurements (no torch, no autoconv imports)."""
