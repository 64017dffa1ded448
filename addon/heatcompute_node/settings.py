"""Node settings from command-line flags, environment variables and an options file.

Precedence, highest first: CLI flag, ``HEATCOMPUTE_*`` environment variable, the options
file (the add-on's ``/data/options.json``, written by the Supervisor from the add-on's
configuration tab), then the defaults below. The flag names are a stable interface:
scripts and users depend on them.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
import dataclasses
from dataclasses import dataclass, field
import json
import os
from pathlib import Path
import secrets
from typing import Any, Literal, get_args

type HardwareChoice = Literal["auto", "twin"]

DEFAULT_PORT = 8765
ADDON_OPTIONS_FILE = Path("/data/options.json")
TOKEN_FILE_NAME = "token"
ENV_PREFIX = "HEATCOMPUTE_"


class SettingsError(ValueError):
    """A setting has a value the node cannot run with."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Everything the node is configured with. Immutable once the node starts."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    data_dir: Path = field(default_factory=lambda: _default_data_dir())
    hardware: HardwareChoice = "auto"
    models: tuple[Path, ...] = ()
    node_name: str = "heatcompute"
    token: str | None = None
    """Bearer token; when None it is read from (or created in) ``data_dir/token``."""
    max_power_w: float = 200.0
    """Upper bound for any heat target; also a safety limit on measured power."""
    idle_power_w: float = 15.0
    """What the machine draws doing nothing (the twin's floor; the governor's baseline)."""
    zeroconf: bool = True
    energy_flush_s: float = 10.0
    """How often the energy counter is written to disk: a crash loses at most this much."""
    status_interval_s: float = 0.5
    """How often the hardware is sampled and status changes are pushed to subscribers."""
    log_level: str = "INFO"
    # --- heat governor, safety and jobs ----------------------------------------------
    chip_temp_limit_c: float = 90.0
    """Background work stops when the hottest chip reaches this (°C)."""
    chip_temp_hysteresis_c: float = 10.0
    """... and resumes once it has cooled this far below the limit."""
    watchdog_min: float = 15.0
    """No heat-target refresh from Home Assistant for this long -> the safe level."""
    watchdog_safe_w: float = 0.0
    """The heat target (W) the watchdog falls back to; 0 means no heat wanted."""
    job_folders: tuple[Path, ...] = ()
    """The only directories folder jobs may read (none: folder jobs are refused)."""
    max_queued_jobs: int = 100
    """Jobs not yet finished beyond this are refused (429)."""
    llm_threads: int = 0
    """CPU threads for each LLM engine; 0 means one per core."""
    llm_context: int = 8192
    """KV cache of a chat model in tokens, shared by all its sequences."""
    llm_slots: int = 16
    """Most sequences a chat model decodes at once (people plus background jobs)."""
    llm_idle_unload_s: float = 900.0
    """A model nobody used for this long is unloaded (its memory freed)."""
    llm_prompt_cache_mb: int = 1024
    """RAM per chat model for finished conversations' prompts, so the next turn starts
    at once; 0 keeps them in the LLM context instead, which slows every decode step."""
    # --- MCP bridge for local data (docs/mcp.md) --------------------------------------
    mcp_folders: tuple[Path, ...] = ()
    """Folders the bridge's file tools may read (none: the file tools refuse)."""
    mcp_databases: tuple[Path, ...] = ()
    """SQLite files the bridge may query read-only (a home-assistant_v2.db among them also
    serves history and statistics)."""
    mcp_recorder_db: Path | None = None
    """Home Assistant's recorder database (home-assistant_v2.db), read for history and
    statistics (the homeassistant scope); listing it in mcp_databases too allows SQL."""
    mcp_ha_url: str | None = None
    """Home Assistant's URL for entities, states, history (the add-on uses the Supervisor)."""
    mcp_ha_token: str | None = None
    """A long-lived access token for mcp_ha_url."""
    mcp_tokens: tuple[str, ...] = ()
    """Extra bearer tokens for MCP clients, each ``name:scope+scope:token`` (scopes: files,
    databases, homeassistant). The node token reaches every scope."""
    mcp_trusted_networks: tuple[str, ...] = ()
    """Networks (CIDR) whose MCP requests need no token, e.g. the Supervisor's 172.30.32.0/23."""
    mcp_allowed_hosts: tuple[str, ...] = ()
    """Host names besides addresses, localhost and this machine's name that /mcp answers to."""
    mcp_allowed_origins: tuple[str, ...] = ()
    """Browser origins (scheme://host:port) allowed to call /mcp besides loopback ones."""
    mcp_call_timeout_s: float = 10.0
    """A tool call (a query, a file read, a Home Assistant request) is stopped after this."""
    # --- document index (docs/index.md) ---------------------------------------------------
    index_enabled: bool = True
    """Index the shared folders (mcp_folders) for search by meaning, when any are set."""
    index_database: Path | None = None
    """The index's SQLite file; None: ``<data_dir>/index.sqlite3``."""
    index_model: str | None = None
    """The embedding model the index uses; None: the node's default embedding model."""
    index_freshness_h: float = 24.0
    """New and changed files are searchable within this many hours (the planner's deadline)."""
    index_rescan_s: float = 300.0
    """How often the shared folders are walked for new, changed and removed files."""
    # --- ONNX engine (docs/onnx.md) -------------------------------------------------------
    onnx_repository: Path | None = None
    """The ONNX model repository (a folder per model); None: ``<data_dir>/onnx``."""
    # --- the add-on's dashboard (docs/addon.md) ----------------------------------------
    ingress_port: int = 0
    """A second port that serves the dashboard without a token, only to the addresses in
    ``ingress_allowed``; 0: no dashboard port (the add-on image sets 8099)."""
    ingress_allowed: tuple[str, ...] = ("172.30.32.2",)
    """Who may use the dashboard port: the Supervisor's ingress proxy."""
    # --- the fleet: one model split over several nodes (docs/fleet.md) -----------------
    fleet_worker: bool = False
    """Lend this node's memory and CPU to a paired lead (the role at a first start; the
    API's and Home Assistant's choice is kept in <data_dir>/fleet/role.json after)."""
    fleet_port: int = 8766
    """The worker's TLS tunnel port (on ``host``); ggml's RPC server stays on 127.0.0.1."""
    fleet_offload: str = ""
    """Internal, set by a lead for its engine process: ``GPU_LAYERS:host:port=weight,...``
    (offload.py); chat models then put their last layers on those RPC servers."""

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise SettingsError(f"port must be 1-65535, got {self.port}")
        if self.hardware not in get_args(HardwareChoice.__value__):
            raise SettingsError(f"hardware must be auto or twin, got {self.hardware!r}")
        if self.max_power_w <= 0:
            raise SettingsError(f"max_power_w must be positive, got {self.max_power_w}")
        if not 0 <= self.idle_power_w <= self.max_power_w:
            raise SettingsError("idle_power_w must be between 0 and max_power_w")
        if self.energy_flush_s <= 0 or self.status_interval_s <= 0:
            raise SettingsError("intervals must be positive")
        if not 0 < self.chip_temp_hysteresis_c < self.chip_temp_limit_c:
            raise SettingsError("chip_temp_hysteresis_c must be above 0 and below the limit")
        # The watchdog is a safety function: it can be slowed down, never switched off.
        if self.watchdog_min <= 0:
            raise SettingsError(f"watchdog_min must be positive, got {self.watchdog_min}")
        if not 0 <= self.watchdog_safe_w <= self.max_power_w:
            raise SettingsError("watchdog_safe_w must be between 0 and max_power_w")
        if self.max_queued_jobs < 1:
            raise SettingsError(f"max_queued_jobs must be at least 1, got {self.max_queued_jobs}")
        self._check_llm()
        self._check_mcp()
        if not 0 < self.index_freshness_h <= 24 * 365:
            raise SettingsError("index_freshness_h must be above 0 and at most a year")
        if not 1 <= self.index_rescan_s <= 86400:
            raise SettingsError("index_rescan_s must be 1-86400 seconds")
        if not 0 <= self.ingress_port < 65536 or self.ingress_port == self.port:
            raise SettingsError("ingress_port must be 0 (none) or a free port besides port")
        self._check_fleet()

    def _check_fleet(self) -> None:
        if not 0 < self.fleet_port < 65536 or self.fleet_port == self.port:
            raise SettingsError("fleet_port must be 1-65535 and not the API's port")
        if self.fleet_offload:
            from .engines.llm.offload import Offload

            try:
                Offload.parse(self.fleet_offload)
            except ValueError as err:
                raise SettingsError(f"fleet_offload: {err}") from err

    def _check_llm(self) -> None:
        if self.llm_threads < 0:
            raise SettingsError(f"llm_threads must be 0 (all cores) or more: {self.llm_threads}")
        if self.llm_context < 256:
            raise SettingsError(f"llm_context must be at least 256, got {self.llm_context}")
        if not 1 <= self.llm_slots <= 64:
            raise SettingsError(f"llm_slots must be 1-64, got {self.llm_slots}")
        if self.llm_idle_unload_s <= 0:
            raise SettingsError("llm_idle_unload_s must be positive")
        if not 0 <= self.llm_prompt_cache_mb <= 1 << 20:
            raise SettingsError(
                f"llm_prompt_cache_mb must be 0-1048576 (MiB), got {self.llm_prompt_cache_mb}"
            )

    def _check_mcp(self) -> None:
        from .mcp.tokens import SCOPES, TokenSpec, TokenSpecError, TrustedNetworks

        try:
            for spec in self.mcp_tokens:
                TokenSpec.parse(spec)
            TrustedNetworks.parse(self.mcp_trusted_networks, SCOPES)
        except TokenSpecError as err:
            raise SettingsError(str(err)) from err
        if bool(self.mcp_ha_url) != bool(self.mcp_ha_token):
            raise SettingsError("mcp_ha_url and mcp_ha_token go together")
        if not 0 < self.mcp_call_timeout_s <= 600:
            raise SettingsError("mcp_call_timeout_s must be above 0 and at most 600")

    @property
    def onnx_repository_dir(self) -> Path:
        return self.onnx_repository or self.data_dir / "onnx"

    @property
    def index_database_path(self) -> Path:
        return self.index_database or self.data_dir / "index.sqlite3"

    @property
    def index_on(self) -> bool:
        """The document index runs: switched on and some folder shared."""
        return self.index_enabled and bool(self.mcp_folders)

    def resolve_token(self) -> str:
        """Return the bearer token, creating and persisting one on first start."""
        if self.token:
            return self.token
        path = self.data_dir / TOKEN_FILE_NAME
        if path.exists():
            token = path.read_text(encoding="utf-8").strip()
            if token:
                return token
        self.data_dir.mkdir(parents=True, exist_ok=True)
        token = secrets.token_urlsafe(32)
        # Written 0600 before the secret goes in, so it is never world-readable.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(token + "\n")
        return token


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "heatcompute"


_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}
_PATH_LISTS = frozenset({"models", "job_folders", "mcp_folders", "mcp_databases"})
_TEXT_LISTS = frozenset(
    {"mcp_tokens", "mcp_trusted_networks", "mcp_allowed_hosts", "mcp_allowed_origins"}
)


def _mcp_token_text(item: Any) -> str:
    """The add-on's options list tokens as {name, scopes, token}; the node keeps text."""
    if isinstance(item, dict):
        scopes = item.get("scopes", "")
        scopes = "+".join(scopes) if isinstance(scopes, list) else str(scopes)
        return f"{item.get('name', '')}:{scopes}:{item.get('token', '')}"
    return str(item)


def _coerce(name: str, value: Any) -> Any:
    """Turn a string (env) or JSON value (options file) into the field's type."""
    default = _FIELDS[name].default
    if name in _PATH_LISTS:
        items = value.split(os.pathsep) if isinstance(value, str) else value
        return tuple(Path(str(item)) for item in items if str(item))
    if name == "ingress_allowed":
        items = value.split(",") if isinstance(value, str) else value
        return tuple(str(item).strip() for item in items if str(item).strip())
    if name in _TEXT_LISTS:
        # Environment: comma-separated (tokens hold no commas); options: a list.
        items = value.split(",") if isinstance(value, str) else value
        return tuple(_mcp_token_text(item) for item in items if item)
    if name == "data_dir":
        return Path(str(value))
    if name in ("mcp_recorder_db", "onnx_repository", "index_database"):
        return Path(str(value)) if value not in ("", None) else None
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if str(value).lower() in {"1", "true", "yes", "on"}:
            return True
        if str(value).lower() in {"0", "false", "no", "off"}:
            return False
        raise SettingsError(f"{name} must be true or false, got {value!r}")
    try:
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
    except (TypeError, ValueError) as err:
        raise SettingsError(f"{name} must be a number, got {value!r}") from err
    return None if value in ("", None) else str(value)


def build_parser() -> argparse.ArgumentParser:
    """The node's command line. Flag names are a stable interface."""
    parser = argparse.ArgumentParser(
        prog="heatcompute_node",
        description="heatcompute node: turns heat demand into local AI work.",
    )
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help=f"TCP port (default {DEFAULT_PORT})")
    parser.add_argument("--data-dir", type=Path, help="state: token, energy counter, jobs")
    parser.add_argument(
        "--hardware",
        choices=get_args(HardwareChoice.__value__),
        help="auto: real sensors when found, else the simulated twin; twin: always simulate",
    )
    parser.add_argument(
        "--model",
        dest="models",
        type=Path,
        action="append",
        help="a GGUF or ONNX model file to serve (repeatable)",
    )
    parser.add_argument("--node-name", help="name shown in Home Assistant")
    parser.add_argument("--max-power", dest="max_power_w", type=float, help="max power in W")
    parser.add_argument("--idle-power", dest="idle_power_w", type=float, help="idle power in W")
    parser.add_argument(
        "--no-zeroconf",
        dest="zeroconf",
        action="store_false",
        default=None,
        help="do not advertise _heatcompute._tcp on the local network",
    )
    parser.add_argument(
        "--options", type=Path, help="options JSON file (add-on: /data/options.json)"
    )
    parser.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR")
    parser.add_argument(
        "--chip-temp-limit",
        dest="chip_temp_limit_c",
        type=float,
        help="chip temperature (°C) at which background work stops (default 90)",
    )
    parser.add_argument(
        "--chip-temp-hysteresis",
        dest="chip_temp_hysteresis_c",
        type=float,
        help="how far (K) below the limit the chip must cool before work resumes (default 10)",
    )
    parser.add_argument(
        "--watchdog-minutes",
        dest="watchdog_min",
        type=float,
        help="minutes without a heat-target refresh before the safe level applies (default 15)",
    )
    parser.add_argument(
        "--watchdog-safe-power",
        dest="watchdog_safe_w",
        type=float,
        help="heat target in W while the watchdog has tripped (default 0: no heat)",
    )
    parser.add_argument(
        "--job-folder",
        dest="job_folders",
        type=Path,
        action="append",
        help="a directory folder jobs may read (repeatable; default: none)",
    )
    parser.add_argument(
        "--max-queued-jobs", dest="max_queued_jobs", type=int, help="job queue bound (100)"
    )
    parser.add_argument(
        "--llm-threads", dest="llm_threads", type=int, help="LLM threads (default 0: all cores)"
    )
    parser.add_argument(
        "--llm-context", dest="llm_context", type=int, help="LLM context in tokens (8192)"
    )
    parser.add_argument(
        "--llm-slots", dest="llm_slots", type=int, help="sequences decoded at once (16)"
    )
    parser.add_argument(
        "--llm-idle-unload",
        dest="llm_idle_unload_s",
        type=float,
        help="unload a model unused for this many seconds (900)",
    )
    parser.add_argument(
        "--llm-prompt-cache-mb",
        dest="llm_prompt_cache_mb",
        type=int,
        help="RAM (MiB) per chat model for finished prompts, 0: keep them in the context (1024)",
    )
    _add_mcp_flags(parser)
    _add_index_flags(parser)
    parser.add_argument(
        "--onnx-repository",
        dest="onnx_repository",
        type=Path,
        help="ONNX model repository, a folder per model (default: <data dir>/onnx)",
    )
    fleet = parser.add_argument_group("fleet: one model over several nodes (docs/fleet.md)")
    fleet.add_argument(
        "--fleet-worker",
        dest="fleet_worker",
        action="store_true",
        default=None,
        help="lend this node to a paired lead (the role at a first start)",
    )
    fleet.add_argument("--fleet-port", dest="fleet_port", type=int, help="TLS tunnel port (8766)")
    fleet.add_argument("--fleet-offload", dest="fleet_offload", help=argparse.SUPPRESS)
    return parser


def _add_mcp_flags(parser: argparse.ArgumentParser) -> None:
    mcp = parser.add_argument_group("MCP bridge for local data (docs/mcp.md)")
    for flag, dest, text in (
        ("--mcp-folder", "mcp_folders", "a folder the file tools may read (repeatable)"),
        ("--mcp-database", "mcp_databases", "a SQLite file to query read-only (repeatable)"),
    ):
        mcp.add_argument(flag, dest=dest, type=Path, action="append", help=text)
    for flag, dest, text in (
        ("--mcp-token", "mcp_tokens", "an MCP client token name:scope+scope:token (repeatable)"),
        ("--mcp-trusted-network", "mcp_trusted_networks", "CIDR allowed without token"),
        ("--mcp-allowed-host", "mcp_allowed_hosts", "an extra host name /mcp answers to"),
        ("--mcp-allowed-origin", "mcp_allowed_origins", "a browser origin allowed on /mcp"),
    ):
        mcp.add_argument(flag, dest=dest, action="append", help=text)
    mcp.add_argument(
        "--mcp-recorder-db", dest="mcp_recorder_db", type=Path, help="home-assistant_v2.db"
    )
    mcp.add_argument("--mcp-ha-url", dest="mcp_ha_url", help="Home Assistant URL (bare node)")
    mcp.add_argument("--mcp-ha-token", dest="mcp_ha_token", help="its long-lived access token")
    mcp.add_argument(
        "--mcp-call-timeout", dest="mcp_call_timeout_s", type=float, help="tool call limit (10 s)"
    )


def _add_index_flags(parser: argparse.ArgumentParser) -> None:
    index = parser.add_argument_group("document index of the shared folders (docs/index.md)")
    index.add_argument(
        "--no-index",
        dest="index_enabled",
        action="store_false",
        default=None,
        help="do not index the shared folders (--mcp-folder) for search",
    )
    index.add_argument(
        "--index-database",
        dest="index_database",
        type=Path,
        help="the index's SQLite file (default: <data dir>/index.sqlite3)",
    )
    index.add_argument(
        "--index-model", dest="index_model", help="embedding model (default: the node's)"
    )
    index.add_argument(
        "--index-freshness-hours",
        dest="index_freshness_h",
        type=float,
        help="new files are searchable within this many hours (24)",
    )
    index.add_argument(
        "--index-rescan",
        dest="index_rescan_s",
        type=float,
        help="seconds between walks of the shared folders for changes (300)",
    )


def load_settings(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Merge defaults, the options file, the environment and the command line."""
    environ = os.environ if environ is None else environ
    args = vars(build_parser().parse_args(argv))
    values: dict[str, Any] = {}

    options_file: Path | None = args.pop("options") or (
        Path(environ[f"{ENV_PREFIX}OPTIONS"]) if f"{ENV_PREFIX}OPTIONS" in environ else None
    )
    if options_file is None and ADDON_OPTIONS_FILE.is_file():
        options_file = ADDON_OPTIONS_FILE
    if options_file is not None:
        values.update(_read_options(options_file))

    for name in _FIELDS:
        env_value = environ.get(ENV_PREFIX + name.upper())
        if env_value is not None:
            values[name] = _coerce(name, env_value)

    values.update({name: value for name, value in args.items() if value is not None})
    for name in _PATH_LISTS | _TEXT_LISTS | {"ingress_allowed"}:
        if name in values:
            values[name] = tuple(values[name])
    return Settings(**values)


def _read_options(path: Path) -> dict[str, Any]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise SettingsError(f"cannot read options file {path}: {err}") from err
    if not isinstance(raw, dict):
        raise SettingsError(f"options file {path} must hold a JSON object")
    unknown = sorted(set(raw) - set(_FIELDS))
    if unknown:
        raise SettingsError(f"options file {path}: unknown options {', '.join(unknown)}")
    return {name: _coerce(name, value) for name, value in raw.items() if value is not None}
