"""`flux validate` and `flux schema`: the desired-state commands, and the helpers other
commands use to find and load a site file."""

from __future__ import annotations

import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import click

from reconciler.config.loader import Problem, check_site_file
from reconciler.config.model import Site

SCHEMA_PATH = Path("schemas/site.schema.json")
SCHEMA_COMMENT = "# yaml-language-server: $schema=../schemas/site.schema.json"


# --------------------------------------------------------------------------- validate


def site_files(paths: tuple[Path, ...]) -> list[Path]:
    """The site files named by ``paths`` (folders give their *.yaml and *.yml files).

    Only regular files are site files: reading a FIFO would wait for a writer forever. A
    folder's other entries (a sub-folder or FIFO named x.yaml) are skipped, as are its
    files of other names; a path named on its own that is not a regular file is refused.
    """
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in [*path.glob("*.yaml"), *path.glob("*.yml")] if p.is_file())
            if not found:
                raise click.UsageError(f"no *.yaml files in folder {str(path)!r}")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        elif path.exists():
            raise click.UsageError(
                f"{str(path)!r} is not a regular file (a FIFO, socket or device); "
                "name a site file or a folder of them"
            )
        else:
            raise click.UsageError(f"no such file or folder: {str(path)!r}")
    return files


def _problems_of(path: Path) -> list[Problem]:
    return check_site_file(path)[1]


#: Below this many files one process is quicker than starting workers.
PARALLEL_FROM = 200


def _check_all(files: list[Path]) -> list[list[Problem]]:
    """Every file's problems, in order; a large fleet is spread over the CPUs."""
    workers = min(4, os.cpu_count() or 1)
    if len(files) < PARALLEL_FROM or workers < 2:
        return [_problems_of(f) for f in files]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(_problems_of, files, chunksize=50))


def _escape(text: str, prop: bool = False) -> str:
    # GitHub workflow-command escaping; properties also escape ':' and ','.
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if prop else text


def _github(p: Problem) -> str:
    kind = "error" if p.severity == "error" else "warning"
    where = f"{p.path}: " if p.path else ""
    return (
        f"::{kind} file={_escape(p.file, True)},line={p.line},col={p.col}::"
        f"{_escape(where + p.message)}"
    )


def _as_json(p: Problem) -> dict[str, Any]:
    return {"line": p.line, "col": p.col, "path": p.path, "message": p.message}


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "github"]),
    default="text",
    show_default=True,
    help="github prints workflow annotations (::error file=...,line=...,col=...::).",
)
def validate(paths: tuple[Path, ...], fmt: str) -> None:
    """Check site files (default: every *.yaml in sites/).

    A folder gives its *.yaml and *.yml regular files (a FIFO or sub-folder of that name is
    skipped). Exit 0 when all are valid, 1 when any is invalid, 2 on a usage error (a path
    that does not exist or is not a regular file). Warnings are shown but do not make a
    file invalid.
    """
    files = site_files(paths or (Path("sites"),))
    results = list(zip(files, _check_all(files), strict=True))
    invalid = [f for f, ps in results if any(p.severity == "error" for p in ps)]
    errors = [p for _, ps in results for p in ps if p.severity == "error"]
    warnings = [p for _, ps in results for p in ps if p.severity == "warning"]
    if fmt == "json":
        out = {
            "valid": not invalid,
            "files": [
                {
                    "file": str(f),
                    "valid": f not in invalid,
                    "errors": [_as_json(p) for p in ps if p.severity == "error"],
                    "warnings": [_as_json(p) for p in ps if p.severity == "warning"],
                }
                for f, ps in results
            ],
        }
        click.echo(json.dumps(out, indent=2))
    else:
        lines = [str(p) for p in errors]
        if fmt == "github":
            lines = [_github(p) for p in [*errors, *warnings]]
        elif warnings:
            lines += ["", "warnings (these do not make a file invalid):"]
            lines += [str(p) for p in warnings]
        summary = (
            f"{len(files)} file(s): {len(files) - len(invalid)} valid, {len(invalid)} invalid; "
            f"{len(errors)} error(s), {len(warnings)} warning(s)"
        )
        click.echo("\n".join([*lines, summary]) if lines else summary)
    sys.exit(1 if invalid else 0)


# --------------------------------------------------------------------------- schema


def schema_text() -> str:
    """The JSON Schema of a site file, as checked in (deterministic: sorted keys)."""
    from reconciler.config.model import Site

    schema = Site.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Flux site file"
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


@click.command()
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=SCHEMA_PATH,
    show_default=True,
    help="Where to write the schema.",
)
@click.option("--check", is_flag=True, help="Only compare: exit 1 if the file is stale.")
def schema(output: Path, check: bool) -> None:
    """Write the JSON Schema of site files (for editors and other tools)."""
    text = schema_text()
    if check:
        current = output.read_text(encoding="utf-8") if output.is_file() else None
        if current != text:
            click.echo(f"{output} is stale; run `flux schema` and commit it", err=True)
            sys.exit(1)
        click.echo(f"{output} is current")
        return
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(f"cannot write {output}: {exc.strerror or exc}") from None
    click.echo(f"wrote {output}")


# --------------------------------------------------------------------------- schedule


sites_dir_option = click.option(
    "--sites-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("sites"),
    show_default=True,
    help="Where a site id is looked up.",
)


def load_valid_site(path: Path, *, exit_code: int = 2) -> Site:
    """The site in ``path``, or its errors (file:line:col: field: message) on stderr and
    exit ``exit_code``: a command on a file that does not validate would mean nothing."""
    site, problems = check_site_file(path)
    errors = [p for p in problems if p.severity == "error"]
    if site is None or errors:
        for p in errors:
            click.echo(str(p), err=True)
        click.echo(f"{path} is not valid; fix it first (`flux validate {path}`)", err=True)
        sys.exit(exit_code)
    return site


def _not_a_site_file(path: Path) -> str | None:
    """Why an existing ``path`` is not a site file (None when it is a regular file)."""
    if path.is_file():
        return None
    if path.is_dir():
        return f"{path} is a folder, not a site file"
    return f"{path} is not a regular file (a FIFO, socket or device), not a site file"


def find_site(site: str, sites_dir: Path) -> Path:
    """A site given as a path or as an id looked up in ``sites_dir``."""
    as_path = Path(site)
    if as_path.exists():
        problem = _not_a_site_file(as_path)
        if problem is not None:
            raise click.UsageError(problem)
        return as_path
    # A name with a folder or a .yaml ending is a path: looking for sites/<it>.yaml.yaml
    # would only make the message longer.
    if as_path.name != site or as_path.suffix in (".yaml", ".yml"):
        raise click.UsageError(f"no site file {site}: no such file")
    candidate = sites_dir / f"{site}.yaml"
    if candidate.exists():
        problem = _not_a_site_file(candidate)
        if problem is not None:
            raise click.UsageError(problem)
        return candidate
    raise click.UsageError(
        f"no site {site!r}: no file {site} and no {candidate}; give the site file's path, "
        "or the folder of site files with --sites-dir"
    )
