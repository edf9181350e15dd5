"""Keep transformers from importing what neuroscope never uses, so a start costs less.

transformers decides at import time whether to load its tensor-parallel support (which pulls in
`torch.distributed.tensor`, sympy and friends: ~0.6-1 s on the 2-core machines here) and scipy
(for the matching loss of object-detection models: ~0.3 s). neuroscope runs one model on one
device, or spread over devices by accelerate's `device_map`, which uses neither. So before
transformers' model code is first imported we tell it that both are absent.

This touches two of transformers' availability checks, nothing else; it only applies when
transformers' model code has not been imported yet in this process (a library user who imported
it first keeps everything), and `NEUROSCOPE_FULL_IMPORTS=1` turns it off. `bench/startup.py`
measures what it saves.
"""

from __future__ import annotations

import os
import sys

# availability checks transformers reads when importing its model code; each guards only
# features neuroscope never uses (tensor parallelism, detection losses)
_UNUSED = ("is_torch_distributed_available", "is_scipy_available")
# modules whose import means transformers' model code has already read those checks
_TOO_LATE = ("transformers.modeling_utils", "transformers.core_model_loading")


def skip_unused_transformers_imports() -> bool:
    """Make transformers skip tensor-parallel and scipy imports; True if it was applied."""
    if os.environ.get("NEUROSCOPE_FULL_IMPORTS", "").lower() in ("1", "true", "yes", "on"):
        return False
    if any(name in sys.modules for name in _TOO_LATE):
        return False
    try:
        import transformers.utils as utils
        import transformers.utils.import_utils as import_utils
    except ImportError:
        return False

    def absent() -> bool:
        return False

    for name in _UNUSED:
        if hasattr(import_utils, name):
            setattr(import_utils, name, absent)
        if hasattr(utils, name):
            setattr(utils, name, absent)
    return True
