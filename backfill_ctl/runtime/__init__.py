"""What runs a backfill after apply: the `scheduler` (pure: which pending instance may
start now, and why the others wait), the `controller` (the loop that reconciles the
store with the backend under a lease) and `alerts`.
"""
