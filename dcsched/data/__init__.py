"""Data: the shipped real traces (raw/, checked against raw/MANIFEST.sha256) and users' own files,
and the one loader that turns a scenario into exogenous tensors per day (:mod:`dcsched.data.exogenous`).
Nothing else in dcsched reads trace files."""
