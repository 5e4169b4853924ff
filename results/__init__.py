"""ds2bench results: run directories -> time-to-train and throughput tables, plots,
and an honest comparison with the published "FP32 avg loss 0.3443".

    python -m results --runs runs [--out runs/report]

Modules: `logparse` (robust :::MLLOG reader), `rundirs` (one row per run),
`eligibility` (scored / non-converged / excluded, and why), `scoring`
(olympic mean, throughput, scaling), `compare` + `published.yaml` (the
published loss and its definition), `plots`, `report` (the files), `cli`.
Importing this package does no work.
"""
