"""Desired state from git: fetch, verify, validate, stage behind a health gate, last-known-good.

The loop's seam is :mod:`reconciler.source.controller` (``Revision``, ``TickHealth``,
``DesiredStateSource``, ``GitSource``, ``FileSource``). It sets conditions on the agent's
status (:mod:`reconciler.status`) and imports nothing of the agent.
"""
