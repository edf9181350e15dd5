"""The remote path as far as no network allows (capture/remote.py): the request built and
serialised as nnsight sends it, run by nnsight's own server simulation with our package hidden;
and every failure one sentence: no key, no network, a model NDIF does not serve, a queue that
does not finish, NDIF's own refusal."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from neuroscope_tui.capture.run import GenerationOptions, run
from neuroscope_tui.errors import BackendError
from neuroscope_tui.trace import CaptureSpec
from tiny_models import build_tiny, tiny_bundle

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("nnsight") is None, reason="nnsight is not installed"
)

PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny("llama", tmp_path_factory.mktemp("m") / "llama")


def test_the_request_runs_on_a_simulated_server_without_our_package():
    """nnsight's LocalSimulationBackend serialises the block as RemoteBackend does, then
    deserialises it with every non-installed module (neuroscope_tui too) hidden, as on NDIF,
    and runs it: our reductions must travel by value, and the trace equals the native run."""
    from nnsight.intervention.backends.local import LocalSimulationBackend

    from neuroscope_tui.capture.nnsight_backend import wrap
    from neuroscope_tui.capture.remote import whole_run

    bundle = tiny_bundle("llama")
    lm = wrap(bundle)
    spec = CaptureSpec(full_layers=None, lens_positions=(1, 4))
    options = GenerationOptions(max_new_tokens=3)
    native = run(bundle, PROMPT, spec, options)
    other = whole_run(lm, bundle, PROMPT, spec, options, backend=LocalSimulationBackend(lm))
    assert other.token_ids == native.token_ids
    assert set(other.arrays) == {k for k in native.arrays if not k.startswith("heads.")}
    for name, value in other.arrays.items():
        np.testing.assert_allclose(value, native.arrays[name], rtol=1e-4, atol=1e-5, err_msg=name)


def test_interventions_travel_with_the_request_and_equal_the_native_run():
    """Zero and mean ablations and a steering vector go with the request (shipped by value,
    run with our package hidden) and change the run as the native hooks do; a patch, which
    needs a second prompt's activations, is refused in one sentence."""
    from nnsight.intervention.backends.local import LocalSimulationBackend

    from neuroscope_tui.capture.interventions import Ablation, Patch, Steering
    from neuroscope_tui.capture.nnsight_backend import wrap
    from neuroscope_tui.capture.remote import whole_run
    from neuroscope_tui.errors import UsageError

    bundle = tiny_bundle("llama")
    lm = wrap(bundle)
    direction = np.random.default_rng(1).standard_normal(bundle.anatomy.d_model)
    ivs = [
        Ablation("head", 0, 1),
        Ablation("neuron", 1, 3, mode="mean"),
        Ablation("mlp", 0, positions=(2, 3)),
        Steering(1, 2.0, tuple(direction.tolist())),
    ]
    spec = CaptureSpec(full_layers=None, lens_positions=(1, 4))
    options = GenerationOptions(max_new_tokens=3)
    native = run(bundle, PROMPT, spec, options, interventions=ivs)
    clean = run(bundle, PROMPT, spec, options)
    other = whole_run(
        lm, bundle, PROMPT, spec, options, backend=LocalSimulationBackend(lm), interventions=ivs
    )
    assert not np.allclose(native.get("resid.norm"), clean.get("resid.norm"))
    assert other.token_ids == native.token_ids and other.interventions == native.interventions
    for name, value in other.arrays.items():
        np.testing.assert_allclose(value, native.arrays[name], rtol=1e-4, atol=1e-5, err_msg=name)
    patch = Patch("resid", 1, (2,), source="The capital of Spain is")
    with pytest.raises(UsageError, match="patches and resampling need a second prompt"):
        whole_run(lm, bundle, PROMPT, spec, options, interventions=[patch])


def _session(folder: Path, monkeypatch):
    """A session for the tiny model as NDIF would name it, without asking the hub."""
    import nnsight.modeling.huggingface as hf

    from neuroscope_tui.capture.remote import RemoteSession, remote_model

    monkeypatch.setitem(hf._ID_CACHE, str(folder), str(folder))  # the hub's canonical id
    lm, bundle = remote_model(str(folder))
    return RemoteSession(lm=lm, bundle=bundle, key="test-key", host="http://127.0.0.1:9")


def test_the_request_nnsight_would_post(tiny_folder, monkeypatch):
    """What goes over the wire: the model key, our code by value, the key in the header; the
    weights are not loaded here (meta), and without a network the run is one sentence."""
    import httpx
    from nnsight.intervention.backends.remote import RemoteBackend, RemoteError

    from neuroscope_tui.capture.remote import run_remote

    session = _session(tiny_folder, monkeypatch)
    assert next(session.bundle.model.parameters()).device.type == "meta"
    sent = {}

    def post(self, request, blob):
        sent.update(request=request, blob=blob, key=self.api_key)
        raise RemoteError("Failed to send request: refused") from httpx.ConnectError("refused")

    monkeypatch.setattr(RemoteBackend, "_post", post)
    with pytest.raises(BackendError, match=r"cannot reach NDIF at http://127\.0\.0\.1:9"):
        run_remote(session, PROMPT, None, GenerationOptions(max_new_tokens=2))
    request, blob = sent["request"], sent["blob"]
    assert str(tiny_folder) in request.model_key and sent["key"] == "test-key"
    if request.compress:
        import zstandard

        blob = zstandard.ZstdDecompressor().decompress(blob)
    assert b"reduce_step" in blob and b"summarise_rows" in blob  # shipped by value
    assert len(sent["blob"]) < 100_000  # the request is code and a plan, not tensors


def test_a_refusal_by_ndif_is_one_sentence(tiny_folder, monkeypatch):
    import httpx
    from nnsight.intervention.backends.remote import RemoteBackend, RemoteError

    from neuroscope_tui.capture.remote import run_remote

    session = _session(tiny_folder, monkeypatch)
    response = httpx.Response(401, request=httpx.Request("POST", "http://127.0.0.1:9/request"))

    def post(self, request, blob):
        cause = httpx.HTTPStatusError("401", request=response.request, response=response)
        raise RemoteError("Failed to send request: invalid API key") from cause

    monkeypatch.setattr(RemoteBackend, "_post", post)
    with pytest.raises(BackendError, match=r"^NDIF refused the request: invalid API key\.$"):
        run_remote(session, PROMPT, None, GenerationOptions(max_new_tokens=1))


def test_no_key_is_one_sentence():
    from neuroscope_tui.capture.remote import api_key

    with pytest.raises(BackendError, match="NDIF_API_KEY environment variable"):
        api_key({})
    with pytest.raises(BackendError):
        api_key({"NDIF_API_KEY": "  "})
    assert api_key({"NDIF_API_KEY": "abc"}) == "abc"


def test_no_network_is_one_sentence():
    from neuroscope_tui.capture.remote import served_models

    with pytest.raises(BackendError, match=r"^cannot reach NDIF at http://127.0.0.1:9 .*network"):
        served_models("http://127.0.0.1:9", timeout_s=2)


def test_a_model_ndif_does_not_serve(monkeypatch):
    from neuroscope_tui.capture import remote

    monkeypatch.setattr(remote, "served_models", lambda host: {"meta-llama/llama-3.1-70b"})
    with pytest.raises(BackendError, match=r"NDIF does not serve gpt2 now .*llama-3\.1-70b"):
        remote.connect("gpt2", environ={"NDIF_API_KEY": "k"})
    remote.check_served("Meta-Llama/Llama-3.1-70B", {"meta-llama/llama-3.1-70b"})


def test_the_hub_unreachable_is_one_sentence(monkeypatch):
    import huggingface_hub.constants

    from neuroscope_tui.capture.remote import remote_model

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read at import
    with pytest.raises(BackendError, match="cannot read no-such/model-xyz's configuration"):
        remote_model("no-such/model-xyz")


class _Queued:
    """A submitted request that never leaves NDIF's queue."""

    def __init__(self, statuses: list[str]):
        self._statuses = iter(statuses)
        self.status = None

    def poll(self):
        from nnsight.schema.response import Status

        self.status = Status(next(self._statuses))
        return None


def test_a_queue_timeout_is_one_sentence_and_the_waiting_is_reported():
    from neuroscope_tui.capture.remote import POLL_EVERY_S, poll_until_done

    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    heard: list[str] = []
    backend = _Queued(["RECEIVED", "QUEUED", "QUEUED", "QUEUED", "QUEUED"])
    with pytest.raises(BackendError, match=r"did not finish the run within 5 s .*QUEUED"):
        poll_until_done(
            backend, timeout_s=5, on_status=heard.append, sleep=sleep, clock=lambda: now[0]
        )
    assert heard == ["RECEIVED", "QUEUED"]
    assert now[0] >= 5 > now[0] - POLL_EVERY_S


def test_an_error_on_ndif_while_waiting_is_one_sentence():
    from nnsight.intervention.backends.remote import RemoteError

    from neuroscope_tui.capture.remote import poll_until_done

    class Failing:
        status = None

        def poll(self):
            raise RemoteError("model crashed: CUDA out of memory")

    with pytest.raises(BackendError, match=r"^NDIF could not run the request: model crashed"):
        poll_until_done(Failing(), timeout_s=5, sleep=lambda s: None)
