"""Pure control: from readings, signals and a time to one battery setpoint, and why.

``core.decide`` is the entry point. On the way: ``guard`` (fresh readings or a safe
stop), ``schedule`` (active entries and rates), ``context`` (what a mode
sees), ``modes/`` (one module per mode, each proposing a ``Component``), ``fold`` (the
priority fold), ``envelope`` (battery, SoE, site and ramp limits). ``prediction`` and
``curve`` are shared by the modes; ``signals`` holds the market-feed Protocols.
Nothing here does I/O or reads a clock, and no module keeps state: what is remembered
between ticks (including the schedule's day memo) is in the caller's ``ControlState``.
"""
