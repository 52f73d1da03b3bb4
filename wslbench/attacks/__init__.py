"""Adversarial attacks (DDN, C&W L2) and robustness evaluation."""

from __future__ import annotations
