"""The command-line interface: one module per verb, wired together in `main`."""
