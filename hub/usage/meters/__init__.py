"""Meters of the usage ledger: they turn what runs (Dask schedulers and workers, later servers and runs) into usage
intervals in the platform database (``usage_intervals``), from which quotas and statements are computed."""
