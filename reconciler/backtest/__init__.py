"""`flux backtest`: what a site file's control would have done on the simulated site with
recorded prices, and what it would have been worth (see engine.py and report.py)."""
