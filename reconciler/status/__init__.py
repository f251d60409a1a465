"""The agent's status: conditions, revisions, loop and telemetry figures (``model``), and
the record of it the agent stores in the database and `flux diff` reads (``record``).

A leaf: it imports nothing of the agent, the source or the diff, so each of them can use
it (the agent writes it, the source sets its conditions, the diff reads it).
"""
