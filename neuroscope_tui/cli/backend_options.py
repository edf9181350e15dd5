"""`--backend native|nnsight` and `--remote`: which engine runs a capture.

Checked before any model loads, and without importing nnsight (only capture/nnsight_backend.py
and capture/remote.py do): a missing nnsight, a missing NDIF key, or an option the chosen
backend cannot honour costs a second, one sentence, exit 2.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys

from neuroscope_tui.errors import NNSIGHT_INSTALL_HINT, BackendError, UsageError

BACKENDS = ("native", "nnsight")
NDIF_KEY_ENV = "NDIF_API_KEY"  # what capture/remote.py reads (named here for --help)


def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("backend")
    group.add_argument(
        "--backend",
        choices=BACKENDS,
        default=None,
        help="native (default): hooks on the model here; nnsight: the same capture as nnsight "
        'traces (pip install "neuroscope-tui[nnsight]")',
    )
    group.add_argument(
        "--remote",
        action="store_true",
        help="run on NDIF through nnsight (the model's weights stay there); the API key comes "
        f"from the {NDIF_KEY_ENV} environment variable only",
    )


def nnsight_installed() -> bool:
    """Whether nnsight can be imported, without importing it (a None in sys.modules is how a
    blocked import looks, and find_spec raises on it)."""
    if "nnsight" in sys.modules:
        return sys.modules["nnsight"] is not None
    return importlib.util.find_spec("nnsight") is not None


def backend_of(args: argparse.Namespace) -> str:
    """The backend a run uses: --remote implies nnsight."""
    return args.backend or ("nnsight" if getattr(args, "remote", False) else "native")


def check_backend_options(args: argparse.Namespace, *, interventions: bool) -> None:
    """What can be refused before loading: nnsight absent, --remote without its key, options the
    backend cannot honour. `interventions`: whether --ablate/--steer were given."""
    backend = backend_of(args)
    if args.remote and args.backend == "native":
        raise UsageError("--remote runs through nnsight; leave out --backend native.")
    if backend == "native":
        return
    if not nnsight_installed():
        raise BackendError(NNSIGHT_INSTALL_HINT)
    if getattr(args, "watch", None) or getattr(args, "watch_full", None):
        # the nnsight trace reduces the blocks' own sites; it does not hook other modules
        raise UsageError("--watch runs on the native backend only; leave out --backend nnsight.")
    if not args.remote:
        return
    from neuroscope_tui.capture.remote import api_key  # torch, not nnsight

    api_key()  # from the environment only
    if interventions:  # edits that travel with the request; not what needs the model here
        if getattr(args, "ablate_mode", "zero") == "resample":
            raise UsageError(
                "--ablate-mode resample needs a second prompt's activations; run it locally "
                "(leave out --remote)."
            )
        if getattr(args, "steer_diff", None):
            raise UsageError(
                "--steer-diff computes its direction with the model on this machine; leave out "
                "--remote, or steer with a saved vector (--steer FILE@L:ALPHA)."
            )
        if getattr(args, "side_by_side", False):
            raise UsageError("--side-by-side needs the model on this machine; leave out --remote.")
    if args.temperature > 0:
        raise UsageError("a remote run decodes greedily; leave out --temperature.")
    if getattr(args, "attribution", False):
        raise UsageError("--attribution needs the model's gradients here; leave out --remote.")
