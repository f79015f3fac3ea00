"""One module per family; importing this package registers them all (see ``gz.families()``)."""

import importlib
import importlib.util

# core families first, then the classical baselines, then the extended families
_MODULES = ["vae", "gan", "flow", "diffusion", "autoregressive", "baselines",
            "ebm", "score", "flow_matching", "rectified_flow", "consistency", "masked_diffusion",
            "latent_diffusion", "vq_autoregressive", "vq_masked"]

for _m in _MODULES:
    if importlib.util.find_spec(f"genzoo.families.{_m}") is not None:
        importlib.import_module(f"genzoo.families.{_m}")
