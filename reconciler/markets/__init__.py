"""Market signals: feeds behind the Protocols of :mod:`reconciler.control.signals`.

``memory`` holds in-memory feeds (tests, simulator, backtests); HTTP clients for Modo,
Axle and Elexon live beside it.
"""
