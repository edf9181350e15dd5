"""One error type per kind of user mistake, each with a sentence a user can act on.

The CLI prints `str(error)` on stderr and exits with status 2; the TUI shows it as a notice.
Nothing here imports torch.
"""


class NeuroscopeError(Exception):
    """A mistake the user can fix; its message is one sentence saying what to do."""


class ModelNotFoundError(NeuroscopeError):
    """The model name is neither an alias, a local folder, a .gguf file, nor a reachable hub id."""


class ModelLoadError(NeuroscopeError):
    """The model exists but could not be loaded (dtype, device, memory, missing package)."""


class AnatomyError(NeuroscopeError):
    """The model's module tree could not be mapped to blocks, attention, MLP, norm, unembedding."""


class PromptError(NeuroscopeError):
    """The prompt is empty, or longer than the model's context."""


class SnapshotError(NeuroscopeError):
    """A snapshot file is missing, corrupted, truncated, not a snapshot, or from a newer version."""


class OutputPathError(NeuroscopeError):
    """An output path cannot be written, or exists and --force was not given."""


class UsageError(NeuroscopeError):
    """A command-line value is out of range or inconsistent (a layer or head index, say)."""


class ConceptError(NeuroscopeError):
    """A concept set or a fitted concept file is unusable (unreadable, one label, wrong model)."""


class BackendError(NeuroscopeError):
    """A capture backend cannot run: nnsight not installed, no NDIF key, no network, a model
    the remote engine does not serve, a queue that timed out."""


# what `--backend nnsight` (or --remote) says when nnsight is not installed
NNSIGHT_INSTALL_HINT = (
    "the nnsight backend needs nnsight, which is not installed: "
    'pip install "neuroscope-tui[nnsight]".'
)
