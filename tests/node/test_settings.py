"""Settings: flags over environment over options file over defaults; bad values refused."""

from __future__ import annotations

import json
from pathlib import Path
import stat

import pytest

from heatcompute_node.api.openai_service import MANAGER_KEY
from heatcompute_node.app import create_app
from heatcompute_node.settings import Settings, SettingsError, load_settings


def test_defaults(tmp_path: Path) -> None:
    settings = load_settings([], environ={"HEATCOMPUTE_OPTIONS": str(_options(tmp_path, {}))})
    assert settings.host == "127.0.0.1"
    assert settings.port == 8765
    assert settings.hardware == "auto"
    assert settings.models == ()
    assert settings.zeroconf is True


def test_precedence_flag_over_env_over_options(tmp_path: Path) -> None:
    options = _options(tmp_path, {"port": 9001, "node_name": "cellar", "max_power_w": 300})
    environ = {"HEATCOMPUTE_OPTIONS": str(options), "HEATCOMPUTE_PORT": "9002"}
    settings = load_settings(["--port", "9003", "--model", "a.gguf", "--model", "b.onnx"], environ)
    assert settings.port == 9003
    assert settings.node_name == "cellar"
    assert settings.max_power_w == 300.0
    assert settings.models == (Path("a.gguf"), Path("b.onnx"))
    assert load_settings([], environ).port == 9002


def test_all_stable_flags(tmp_path: Path) -> None:
    settings = load_settings(
        [
            "--host",
            "0.0.0.0",
            "--port",
            "1234",
            "--data-dir",
            str(tmp_path),
            "--hardware",
            "twin",
            "--model",
            "m.gguf",
            "--no-zeroconf",
        ],
        environ={"HEATCOMPUTE_OPTIONS": str(_options(tmp_path, {}))},
    )
    assert (settings.host, settings.port, settings.data_dir) == ("0.0.0.0", 1234, tmp_path)
    assert settings.hardware == "twin"
    assert settings.zeroconf is False


def test_env_booleans_and_models(tmp_path: Path) -> None:
    environ = {
        "HEATCOMPUTE_OPTIONS": str(_options(tmp_path, {})),
        "HEATCOMPUTE_ZEROCONF": "off",
        "HEATCOMPUTE_MODELS": "/m/a.gguf:/m/b.gguf",
    }
    settings = load_settings([], environ)
    assert settings.zeroconf is False
    assert settings.models == (Path("/m/a.gguf"), Path("/m/b.gguf"))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"port": 0}, "port"),
        ({"hardware": "gpu"}, "hardware"),
        ({"max_power_w": -5}, "max_power_w"),
        ({"warp": 9}, "unknown options warp"),
        ({"zeroconf": "maybe"}, "zeroconf"),
        ({"port": "eighty"}, "port must be a number"),
    ],
)
def test_bad_options_are_refused(tmp_path: Path, options: dict[str, object], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings([], environ={"HEATCOMPUTE_OPTIONS": str(_options(tmp_path, options))})


def test_unreadable_options_file(tmp_path: Path) -> None:
    broken = tmp_path / "options.json"
    broken.write_text("{")
    with pytest.raises(SettingsError, match="cannot read options file"):
        load_settings([], environ={"HEATCOMPUTE_OPTIONS": str(broken)})


def test_token_created_once_private_and_kept(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    token = settings.resolve_token()
    assert len(token) >= 32
    path = tmp_path / "token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Settings(data_dir=tmp_path).resolve_token() == token
    assert Settings(data_dir=tmp_path, token="given").resolve_token() == "given"


def _options(tmp_path: Path, options: dict[str, object]) -> Path:
    path = tmp_path / "options.json"
    path.write_text(json.dumps(options))
    return path


def test_heat_safety_and_job_settings(tmp_path: Path) -> None:
    options = _options(
        tmp_path, {"job_folders": ["/share/notes", "/media/docs"], "watchdog_min": 30}
    )
    environ = {"HEATCOMPUTE_OPTIONS": str(options), "HEATCOMPUTE_CHIP_TEMP_LIMIT_C": "85"}
    settings = load_settings(
        ["--watchdog-safe-power", "40", "--max-queued-jobs", "7", "--chip-temp-hysteresis", "5"],
        environ,
    )
    assert settings.job_folders == (Path("/share/notes"), Path("/media/docs"))
    assert settings.watchdog_min == 30.0
    assert settings.watchdog_safe_w == 40.0
    assert settings.chip_temp_limit_c == 85.0
    assert settings.chip_temp_hysteresis_c == 5.0
    assert settings.max_queued_jobs == 7
    flagged = load_settings(["--job-folder", "/a", "--job-folder", "/b"], environ)
    assert flagged.job_folders == (Path("/a"), Path("/b"))
    defaults = Settings()
    assert (defaults.chip_temp_limit_c, defaults.watchdog_min, defaults.job_folders) == (
        90.0,
        15.0,
        (),
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"watchdog_min": 0}, "watchdog_min"),
        ({"watchdog_safe_w": 500}, "watchdog_safe_w"),
        ({"chip_temp_hysteresis_c": 0}, "chip_temp_hysteresis_c"),
        ({"max_queued_jobs": 0}, "max_queued_jobs"),
    ],
)
def test_bad_safety_settings_are_refused(
    tmp_path: Path, options: dict[str, object], message: str
) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings([], environ={"HEATCOMPUTE_OPTIONS": str(_options(tmp_path, options))})


def test_llm_sizing_from_flags_env_and_options(tmp_path: Path) -> None:
    options = _options(tmp_path, {"llm_slots": 4, "llm_idle_unload_s": 60})
    environ = {"HEATCOMPUTE_OPTIONS": str(options), "HEATCOMPUTE_LLM_THREADS": "1"}

    settings = load_settings(["--llm-context", "2048", "--llm-prompt-cache-mb", "0"], environ)

    assert (settings.llm_threads, settings.llm_context, settings.llm_slots) == (1, 2048, 4)
    assert settings.llm_idle_unload_s == 60.0
    assert settings.llm_prompt_cache_mb == 0
    defaults = Settings()
    assert (defaults.llm_threads, defaults.llm_context, defaults.llm_slots) == (0, 8192, 16)
    assert defaults.llm_prompt_cache_mb == 1024


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--llm-threads", "-1"),
        ("--llm-context", "100"),
        ("--llm-slots", "0"),
        ("--llm-slots", "65"),
        ("--llm-idle-unload", "0"),
        ("--llm-prompt-cache-mb", "-1"),
    ],
)
def test_bad_llm_sizing_is_refused(flag: str, value: str) -> None:
    with pytest.raises(SettingsError, match=flag.removeprefix("--").replace("-", "_")):
        load_settings([flag, value], environ={})


def test_the_llm_engines_are_sized_by_the_settings(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path, llm_threads=1, llm_context=1024, llm_slots=3, llm_prompt_cache_mb=64
    )
    engine = create_app(settings)[MANAGER_KEY].settings

    assert (engine.n_threads, engine.n_ctx, engine.n_slots) == (1, 1024, 3)
    assert engine.prompt_cache_mb == 64
    assert engine.idle_unload_s == 900.0
    every_core = create_app(Settings(data_dir=tmp_path))[MANAGER_KEY].settings
    assert every_core.n_threads >= 1


def test_onnx_repository_from_flag_env_and_options(tmp_path: Path) -> None:
    base = ["--data-dir", str(tmp_path / "data")]
    default = load_settings([*base, "--options", str(_options(tmp_path, {}))], {})
    assert default.onnx_repository_dir == tmp_path / "data" / "onnx"
    from_options = load_settings(
        [*base, "--options", str(_options(tmp_path, {"onnx_repository": "/share/onnx"}))], {}
    )
    assert from_options.onnx_repository_dir == Path("/share/onnx")
    from_env = load_settings(
        [*base, "--options", str(_options(tmp_path, {}))], {"HEATCOMPUTE_ONNX_REPOSITORY": "/e"}
    )
    assert from_env.onnx_repository_dir == Path("/e")
    from_flag = load_settings(
        [*base, "--options", str(_options(tmp_path, {})), "--onnx-repository", "/f"],
        {"HEATCOMPUTE_ONNX_REPOSITORY": "/e"},
    )
    assert from_flag.onnx_repository_dir == Path("/f")
