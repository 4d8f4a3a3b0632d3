"""Panels of judges: several judges (models, engines, rubrics) behind one reward, with
their agreement measured (``Panel``, ``load_panel``; docs/judges.md#panels)."""

from __future__ import annotations

from icrm_sgl.panel.spec import Member, PanelSpec, load_panel

__all__ = ["Member", "Panel", "PanelSpec", "load_panel"]


def __getattr__(name: str) -> object:
    if name == "Panel":  # imports the judging machinery: only when a panel is opened
        from icrm_sgl.panel.panel import Panel

        return Panel
    raise AttributeError(f"module 'icrm_sgl.panel' has no attribute {name!r}")
