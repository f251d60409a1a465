"""Desired state from git: fetch, verify, validate, stage behind a health gate, last-known-good.

The loop's seam is :mod:`reconciler.source.controller` (``Revision``, ``TickHealth``,
``DesiredStateSource``, ``GitSource``, ``FileSource``). Nothing is imported here, so that
``reconciler.agent.status`` can use the small helpers without an import cycle.
"""
