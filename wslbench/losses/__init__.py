"""Loss functions of the five papers."""

from __future__ import annotations
