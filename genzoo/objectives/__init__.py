"""Objectives and their conditioning pieces, kept apart from the networks in ``genzoo.nn``.

- :mod:`genzoo.objectives.guidance` -- classifier-free guidance: label dropout in training
  and the one mixing rule every family samples with.
"""

from genzoo.objectives.guidance import drop_labels, guided, guided_velocity, mix_guidance

__all__ = ["drop_labels", "guided", "guided_velocity", "mix_guidance"]
