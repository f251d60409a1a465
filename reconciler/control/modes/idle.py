"""Idle: hold the battery at 0 kW; nothing of lower priority may move it."""

from __future__ import annotations

from reconciler.config.model import IdleParams
from reconciler.control.context import ModeContext
from reconciler.control.types import Component


def propose(ctx: ModeContext, params: IdleParams) -> Component:
    return ctx.hold(0.0, note="idle window")
