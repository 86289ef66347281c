"""``coeflow bench``: the benchmark and its workload. Part of the checkout, not of the installed
product; the tests use the workload too."""
