"""Planning the battery over the next day: forecasts, a linear programme, and the runner
that hands plans to control as a signal (the `optimise` mode follows them)."""
