"""Objectives and their conditioning pieces, kept apart from the networks in ``genzoo.nn``.

- :mod:`genzoo.objectives.guidance` -- classifier-free guidance: label dropout in training
  and the one mixing rule every family samples with.
- :mod:`genzoo.objectives.paths` -- the linear probability path, its training times, the
  stable velocity target and the conditional flow-matching loss.
- :mod:`genzoo.objectives.couplings` -- minibatch optimal-transport pairing of noise and data.
- :mod:`genzoo.objectives.targets` -- the batch posterior mean behind the stable targets of
  score, diffusion and flow matching.

Samplers (ODE/SDE integrators, ancestral steps, RePaint inpainting) live in
:mod:`genzoo.samplers`; networks in :mod:`genzoo.nn`, which imports neither.
"""

from genzoo.objectives.guidance import drop_labels, guided, guided_velocity, mix_guidance

__all__ = ["drop_labels", "guided", "guided_velocity", "mix_guidance"]
