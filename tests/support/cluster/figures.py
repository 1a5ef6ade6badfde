"""Measured figures of the cluster tier (start-up times, load and usage counts), printed when
measured and again in pytest's terminal summary, so a CI log keeps them even with ``-q``."""

from __future__ import annotations

FIGURES: list[str] = []


def record_figure(text: str) -> None:
    print(text)
    FIGURES.append(text)
