"""The node's Supervisor client and the add-on's /data, against a Supervisor stand-in.

Stand-in: the Supervisor (tests/addon/supervisor_standin.py, its discovery routes and
envelope); no Supervisor runs here. The image-level test (scripts/test-addon) runs the
same code in the add-on's container.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from aiohttp import web
import pytest

from heatcompute_node import supervisor
from heatcompute_node.supervisor import AddonEnvironment, Announcement, SupervisorClient
from tests.addon.supervisor_standin import SupervisorStandIn

TOKEN = "supervisor-token"


@pytest.fixture
async def standin(socket_enabled: None) -> AsyncIterator[tuple[SupervisorStandIn, str]]:
    standin = SupervisorStandIn(token=TOKEN)
    runner = web.AppRunner(standin.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield standin, f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_announces_again_only_when_the_config_changes(
    standin: tuple[SupervisorStandIn, str],
) -> None:
    fake, url = standin
    async with aiohttp.ClientSession() as session:
        announcement = Announcement(SupervisorClient(session, AddonEnvironment(TOKEN, url)))
        config = supervisor.discovery_config(port=8765, token="one", host="local-heatcompute")
        assert await announcement.send(config)
        first = fake.events.get_nowait()
        assert (first.service, first.config) == (
            "heatcompute",
            {"host": "local-heatcompute", "port": 8765, "token": "one"},
        )
        assert not await announcement.send(dict(config))  # unchanged: not sent again
        assert fake.events.empty()

        assert await announcement.send({**config, "token": "two"})
        again = fake.events.get_nowait()
        # The Supervisor keeps one message per add-on and service.
        assert (again.uuid, again.config["token"]) == (first.uuid, "two")

        await announcement.remove()
        assert fake.events.get_nowait().action == "removed"
        assert not fake.messages
        await announcement.remove()  # twice is harmless
        assert fake.events.empty()


async def test_a_refusing_supervisor_is_reported_and_stopping_goes_on(
    standin: tuple[SupervisorStandIn, str], caplog: pytest.LogCaptureFixture
) -> None:
    fake, url = standin
    async with aiohttp.ClientSession() as session:
        wrong = SupervisorClient(session, AddonEnvironment("wrong-token", url))
        with pytest.raises(supervisor.SupervisorError, match="refused \\(401\\): Unauthorized"):
            await wrong.info()
        gone = SupervisorClient(session, AddonEnvironment(TOKEN, "http://127.0.0.1:9"))
        with pytest.raises(supervisor.SupervisorError, match="not reachable"):
            await gone.send_discovery("heatcompute", {})

        announcement = Announcement(SupervisorClient(session, AddonEnvironment(TOKEN, url)))
        await announcement.send({"token": "t"})
        fake.messages.clear()  # the Supervisor forgot it (restarted)
        await announcement.remove()
        assert "not withdrawn" in caplog.text
        assert (await SupervisorClient(session, AddonEnvironment(TOKEN, url)).info())["supervisor"]


def test_the_add_on_is_recognised_by_its_supervisor_token() -> None:
    assert AddonEnvironment.detect({}) is None
    assert AddonEnvironment.detect({"SUPERVISOR_TOKEN": "t"}) == AddonEnvironment(
        "t", "http://supervisor"
    )
    assert AddonEnvironment.detect({"HASSIO_TOKEN": "old"}) == AddonEnvironment("old")
    env = {"SUPERVISOR_TOKEN": "t", "HEATCOMPUTE_SUPERVISOR_URL": "http://supervisor:81/"}
    assert AddonEnvironment.detect(env) == AddonEnvironment("t", "http://supervisor:81")


def test_the_image_models_are_linked_into_data(tmp_path: Path) -> None:
    bundled, models = tmp_path / "image", tmp_path / "data" / "models"
    bundled.mkdir()
    (bundled / "chat.gguf").write_bytes(b"GGUF")
    (bundled / "other.gguf").write_bytes(b"GGUF")
    assert supervisor.link_bundled_models(models, None) == []
    assert supervisor.link_bundled_models(models, tmp_path / "missing") == []

    models.mkdir(parents=True)
    (models / "other.gguf").write_bytes(b"the user's own")
    (bundled / "old.gguf").write_bytes(b"GGUF")
    (models / "old.gguf").symlink_to(tmp_path / "nowhere.gguf")  # an older image's model

    made = supervisor.link_bundled_models(models, bundled)
    assert sorted(p.name for p in made) == ["chat.gguf", "old.gguf"]
    assert (models / "chat.gguf").resolve() == bundled / "chat.gguf"
    assert (models / "old.gguf").resolve() == bundled / "old.gguf"
    assert (models / "other.gguf").read_bytes() == b"the user's own"
    assert supervisor.link_bundled_models(models, bundled) == []  # idempotent
    assert supervisor.bundled_models_dir({"HEATCOMPUTE_BUNDLED_MODELS_DIR": "/x"}) == Path("/x")
    assert supervisor.bundled_models_dir({}) is None


def test_the_image_onnx_models_join_the_repository(tmp_path: Path) -> None:
    bundled, repository = tmp_path / "image", tmp_path / "data" / "onnx"
    (bundled / "onnx" / "text-detection" / "1").mkdir(parents=True)
    (bundled / "onnx" / "voice-activity" / "1").mkdir(parents=True)
    assert supervisor.link_bundled_onnx(repository, None) == []
    assert supervisor.link_bundled_onnx(repository, tmp_path / "nothing") == []

    (repository / "voice-activity").mkdir(parents=True)  # the owner's own model
    made = supervisor.link_bundled_onnx(repository, bundled)
    assert [p.name for p in made] == ["text-detection"]
    assert (repository / "text-detection" / "1").is_dir()
    assert not (repository / "voice-activity").is_symlink()
    assert supervisor.link_bundled_onnx(repository, bundled) == []
