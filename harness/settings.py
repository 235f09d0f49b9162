"""Option defaults from ``TWINYARD_*`` variables and the nearest pyproject.toml.

Click already ranks where an option's value comes from: the command line, then the option's
own variable (``TWINYARD_WEBHOOK_SECRET``), then the context's ``default_map``, then the
built-in default. This module fills ``default_map`` for the whole command tree, so every
command reads its settings without code of its own, commands added later included:

- ``TWINYARD_<COMMAND>_<OPTION>``: ``TWINYARD_RUN_STACK_URL``, ``TWINYARD_CONTRACTS_FUZZ_URL``;
- ``[tool.twinyard.<command>]`` in the nearest pyproject.toml from the current folder up:
  ``[tool.twinyard.run] stack_url = "..."``, ``[tool.twinyard.contracts.fuzz] url = "..."``.

A variable beats the file; an empty variable counts as unset; ``TWINYARD_NO_CONFIG`` set turns
both off. Each value is checked by its option, as one typed on the command line is, when its
command runs; ``Settings.origin`` names the variable or key for the error. pydantic-settings
reads both sources; a table or key twinyard does not have is an error, a variable is not (other
programs' ``TWINYARD_RUN_DIR`` shares the prefix).
"""

from __future__ import annotations

import contextlib
import os
import tomllib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError, create_model
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    PyprojectTomlConfigSettingsSource,
    SettingsConfigDict,
)
from typer._click.core import Command, Context, ParameterSource  # typer vendors click
from typer.core import TyperOption

PREFIX = "TWINYARD"
OFF = "TWINYARD_NO_CONFIG"  # set (to anything): neither variables nor pyproject.toml are read
TABLE = ("tool", "twinyard")

CommandPath = tuple[str, ...]


class SettingsError(Exception):
    """pyproject.toml cannot be read or names something twinyard does not have: exit 2."""


@dataclass
class Settings:
    """``default_map`` for click, and where each of its values came from."""

    default_map: dict[str, Any] = field(default_factory=dict)
    origins: dict[CommandPath, dict[str, str]] = field(default_factory=dict)
    pyproject: Path | None = None

    def put(
        self, path: CommandPath, key: str, param: TyperOption, value: Any, variable: str | None
    ) -> None:
        """One option's value, from ``variable`` or else pyproject.toml (where a relative path
        counts from the file's folder, as the project's other settings do)."""
        base = None
        origin = variable
        if variable is None:
            origin = f"{self.pyproject} {table_name(path)} {key}"
            base = self.pyproject.parent if self.pyproject is not None else None
        node = self.default_map
        for name in path:
            node = node.setdefault(name, {})
        name = param.name or key
        node[name] = _shaped(param, value, base)
        self.origins.setdefault(path, {})[name] = origin or key

    def origin(self, ctx: Context | None, name: str | None) -> str | None:
        """The variable or pyproject key a parameter's value came from, when it came from
        here rather than the command line or the option's own variable."""
        if ctx is None or name is None:
            return None
        if ctx.get_parameter_source(name) is not ParameterSource.DEFAULT_MAP:
            return None
        return self.origins.get(command_path(ctx), {}).get(name)


def command_path(ctx: Context) -> CommandPath:
    """("contracts", "fuzz") for ``twinyard contracts fuzz``: the root's name left out."""
    names: list[str] = []
    while ctx.parent is not None:
        names.append(ctx.info_name or "")
        ctx = ctx.parent
    return tuple(reversed(names))


def env_name(path: CommandPath, key: str) -> str:
    return "_".join((PREFIX, *path, key)).upper().replace("-", "_")


def table_name(path: CommandPath) -> str:
    return "[" + ".".join((*TABLE, *path)) + "]"


def load(root: Command) -> Settings:
    """Settings for every command under ``root``, from the environment and pyproject.toml."""
    if os.environ.get(OFF):
        return Settings()
    pyproject, table = _pyproject()
    settings = Settings(pyproject=pyproject)
    if pyproject is not None:
        _check_tables(root, table, (), pyproject)
    for path, command in leaves(root):
        options = command_options(command)
        if not options or not _mentioned(path, table):
            continue  # nothing to read: no model built (each costs a few milliseconds)
        for key, value in _read(path, options, pyproject).items():
            settings.put(path, key, options[key], value, _env_origin(path, key))
    return settings


def leaves(command: Command, path: CommandPath = ()) -> Iterator[tuple[CommandPath, Any]]:
    """Every command that runs (not a group), with its path of names."""
    subcommands = getattr(command, "commands", None)
    if subcommands is None:
        yield path, command
        return
    for name, sub in subcommands.items():
        yield from leaves(sub, (*path, name))


def command_options(command: Command) -> dict[str, TyperOption]:
    """Key -> option, the key being the long flag as a name: ``stack_url`` for --stack-url,
    ``json`` for --json (not the Python parameter behind it)."""
    found: dict[str, TyperOption] = {}
    for param in command.params:
        if not isinstance(param, TyperOption) or param.hidden or not param.expose_value:
            continue
        longs = [o for o in param.opts if o.startswith("--")]
        if longs:
            found[longs[0][2:].replace("-", "_")] = param
    return found


def nearest_pyproject(start: Path | None = None) -> Path | None:
    """The pyproject.toml in ``start`` (the current folder) or the closest folder above it."""
    here = (start or Path.cwd()).resolve()
    return next(
        (d / "pyproject.toml" for d in (here, *here.parents) if (d / "pyproject.toml").is_file()),
        None,
    )


def _pyproject() -> tuple[Path | None, dict[str, Any]]:
    """The nearest pyproject.toml and its [tool.twinyard] table (empty when there is none)."""
    found = nearest_pyproject()
    if found is None:
        return None, {}

    class Locate(BaseSettings):
        model_config = SettingsConfigDict(pyproject_toml_table_header=())

    try:
        data = PyprojectTomlConfigSettingsSource(Locate, found).toml_data
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{found}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise SettingsError(f"{found}: cannot read: {exc.strerror}") from None
    for key in TABLE:
        data = data.get(key, {}) if isinstance(data, dict) else data
    if not isinstance(data, dict):
        raise SettingsError(f"{found}: {table_name(())} must be a table")
    return found, data


def _check_tables(command: Any, table: dict[str, Any], path: CommandPath, file: Path) -> None:
    """Each table names a command, each group's a subcommand: a typo is an error, not silence."""
    subcommands = getattr(command, "commands", None)
    if subcommands is None:
        return
    for name, value in table.items():
        where = f"{file} {table_name((*path, name))}"
        if name not in subcommands:
            known = ", ".join(sorted(subcommands))
            raise SettingsError(f"{where}: twinyard has no such command (it has {known})")
        if not isinstance(value, dict):
            raise SettingsError(f"{where}: must be a table of the command's options")
        _check_tables(subcommands[name], value, (*path, name), file)


def _read(
    path: CommandPath, options: dict[str, TyperOption], pyproject: Path | None
) -> dict[str, Any]:
    """One command's values: its variables over its pyproject table (pydantic-settings)."""
    try:
        read = _model(path, options, pyproject)()
    except ValidationError as exc:
        unknown = [str(e["loc"][0]) for e in exc.errors() if e["type"] == "extra_forbidden"]
        known = ", ".join(sorted(options))
        where = f"{pyproject} {table_name(path)}"
        raise SettingsError(f"{where} {unknown[0]}: no such option (known: {known})") from None
    return read.model_dump(exclude_unset=True)


def _model(
    path: CommandPath, options: dict[str, TyperOption], pyproject: Path | None
) -> type[BaseSettings]:
    """A settings class whose fields are the command's options, each any value or unset:
    the options themselves check the values, so that errors read as the command line's."""

    class Options(BaseSettings):
        model_config = SettingsConfigDict(
            env_prefix=env_name(path, ""), env_ignore_empty=True, extra="forbid"
        )
        if pyproject is not None:
            model_config["pyproject_toml_table_header"] = (*TABLE, *path)

        @classmethod
        def settings_customise_sources(
            cls, settings_cls: type[BaseSettings], *args: Any, **kwargs: Any
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            env = EnvSettingsSource(settings_cls)
            if pyproject is None:
                return (env,)
            return (env, PyprojectTomlConfigSettingsSource(settings_cls, pyproject))

    with warnings.catch_warnings():  # an option named --json shadows BaseModel.json: harmless
        warnings.simplefilter("ignore", UserWarning)
        return create_model(
            f"{'_'.join(path)}_settings", __base__=Options, **{k: (Any, None) for k in options}
        )


def _mentioned(path: CommandPath, table: dict[str, Any]) -> bool:
    """Whether a variable or a pyproject table might hold the command's settings."""
    prefix = env_name(path, "")
    if any(k.upper().startswith(prefix) for k in os.environ):
        return True
    for name in path:
        table = table.get(name, {})
    return bool(table)


def _env_origin(path: CommandPath, key: str) -> str | None:
    """The variable that set an option, matched as pydantic-settings does (any case)."""
    wanted = env_name(path, key)
    if os.environ.get(wanted):
        return wanted
    return next((k for k, v in os.environ.items() if k.upper() == wanted and v), None)


def _shaped(param: TyperOption, value: Any, base: Path | None) -> Any:
    """The value as the option takes it: a list for a repeatable option (a variable's words,
    split on spaces or commas), and a relative path from pyproject.toml resolved beside it."""
    if param.multiple or param.nargs != 1:
        if isinstance(value, str):
            value = value.replace(",", " ").split() if base is None else [value]
        if base is not None and _is_path(param) and isinstance(value, list):
            value = [_beside(base, v) for v in value]
        return value
    if base is not None and _is_path(param):
        return _beside(base, value)
    return value


def _is_path(param: TyperOption) -> bool:
    descriptor = getattr(param, "type_descriptor", None)  # typer's own; absent elsewhere
    return bool(getattr(descriptor, "is_path", False))


def _beside(base: Path, value: Any) -> Any:
    if isinstance(value, str) and value and not Path(value).is_absolute():
        return str(base / value)
    return value


@contextlib.contextmanager
def not_for_children() -> Iterator[None]:
    """While a command plays runs in child processes (selftest, coverage): each child gets
    exactly the options the command gives it, none of the user's TWINYARD_RUN_* variables
    or [tool.twinyard.run] (a stack URL there would send selftest to the wrong stack)."""
    before = os.environ.get(OFF)
    os.environ[OFF] = "1"
    try:
        yield
    finally:
        if before is None:
            del os.environ[OFF]
        else:
            os.environ[OFF] = before
