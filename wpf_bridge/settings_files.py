"""config/env.example, docs/settings.md and app.json (Heroku's Deploy button), written from the
settings' declarations in wpf_bridge/settings.py, so that none can say something the code does not do.

``python -m wpf_bridge.settings_files`` rewrites them; with ``--check`` it only names those that
differ (tests/test_settings_files.py fails the same way).
"""

from __future__ import annotations

import argparse
import json
import textwrap
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from .declare import accepted, env_name, extra
from .settings import FIELDS, SECTIONS

ROOT = Path(__file__).resolve().parent.parent
ENV_EXAMPLE = "config/env.example"
REFERENCE = "docs/settings.md"
APP_JSON = "app.json"
COMMAND = "python -m wpf_bridge.settings_files"
#: Set by Heroku itself (the router's port, the dyno's concurrency) or by its PostgreSQL add-on.
HEROKU_SETS = {"PORT", "WEB_CONCURRENCY", "DATABASE_URL"}
#: Made by Heroku at deploy time ("generator": "secret"); the console's, so the Deploy button ends on it.
GENERATED = {"WPF_ACCESS_KEY", "WPF_SECRET_KEY", "WPF_CONSOLE_PASSWORD"}
READ_BACK = " Generated at deploy: the app's Settings > Reveal Config Vars shows it."
READ_BY_PEOPLE = {"WPF_ACCESS_KEY", "WPF_CONSOLE_PASSWORD"}  # pasted into Ortto, typed at sign-in
ASKED_SECTIONS = {"Keys", "WordPress", "Ortto"}  # what connects the bridge: asked for in the Deploy form
ASKED = {"WPF_ALLOWED_ROLES", "WPF_CONSOLE_PASSWORD"}  # the roles URLs ask for; the console, to fix without a shell
HEROKU_VALUES = {"WPF_TRUSTED_PROXIES": "1"}  # Heroku's router is one proxy in front of the web dynos

_ENV_HEADER = f"""\
# wpf-bridge settings. `make run` copies this file to .env (with fresh keys) the first time.
# {REFERENCE} describes every setting. A line that starts with # leaves its setting at the
# default: remove the # to set it. (config/env.example is written from wpf_bridge/settings.py by
# `{COMMAND}`.)\
"""

_REFERENCE_HEADER = f"""\
# Settings

<!-- Written by `{COMMAND}` from wpf_bridge/settings.py: change the settings there. -->

Read from the environment, then from `.env` in the working directory (or the file given with
`--env-file`) for what the environment does not set; validated at start. A bad or missing setting
stops the process with one line naming it (and, when missing, where settings were looked for).
`{ENV_EXAMPLE}` in the repository lists them all, as a template for `.env`.\
"""


def _describe(info: FieldInfo, takes: str = "") -> str:
    """The setting's help, then (if given) what it takes, then whether it is kept secret."""
    return f"{info.description}{takes}{' Secret: never logged or shown.' if not info.repr else ''}"


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return f"{value:g}" if isinstance(value, float) else str(value)


def _default(info: FieldInfo) -> str:
    if info.default is PydanticUndefined:
        return "required"
    if extra(info, "shown"):
        return str(extra(info, "shown"))
    return "off" if info.default is None else f"`{_value(info.default)}`"


def _sections() -> list[tuple[str, list[FieldInfo]]]:
    """The settings in the order declared, under the section each belongs to."""
    sections: list[tuple[str, list[FieldInfo]]] = []
    for info in FIELDS.values():
        if extra(info, "section"):
            sections.append((extra(info, "section"), []))
        sections[-1][1].append(info)
    return sections


def _comment(text: str) -> list[str]:
    """Comment lines of at most 100 characters, without Markdown's backquotes."""
    return textwrap.wrap(
        text.replace("`", ""), 100, initial_indent="# ", subsequent_indent="# ", break_on_hyphens=False
    )


def env_example() -> str:
    """A template for .env: every setting with its help; those left at their default commented out."""
    blocks = [_ENV_HEADER]
    for title, infos in _sections():
        blocks.append("\n".join([f"# ---- {title} ----", *_comment(SECTIONS[title])]))
        for info in infos:
            takes = f" Takes {accepted(info)}." if accepted(info) else ""
            value = extra(info, "example") or ("" if info.default in (None, PydanticUndefined) else info.default)
            line = f"{'#' if info.default in (None, ()) else ''}{env_name(info)}={_value(value)}"
            blocks.append("\n".join([*_comment(_describe(info, takes)), line]))
    return "\n\n".join(blocks) + "\n"


def reference() -> str:
    """The settings reference: a table per section (setting, default, what it takes, what it does)."""
    blocks = [_REFERENCE_HEADER]
    for title, infos in _sections():
        rows = ["| setting | default | accepted | what it does |", "|---|---|---|---|"]
        for info in infos:
            cells = [f"`{env_name(info)}`", _default(info), accepted(info) or "any", _describe(info)]
            rows.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
        blocks += [f"## {title}", *([SECTIONS[title]] if SECTIONS[title] else []), "\n".join(rows)]
    return "\n\n".join(blocks) + "\n"


def app_json() -> str:
    """Heroku's app.json: the Procfile's web and worker (its release step migrates), PostgreSQL, the
    two keys generated, and every setting that connects the bridge asked for with its help; the
    rest keep their defaults (docs/settings.md) and can be set later as config vars."""
    env = {}
    for title, infos in _sections():
        for info in infos:
            name = env_name(info)
            required = info.default is PydanticUndefined
            if name in HEROKU_SETS or not (required or title in ASKED_SECTIONS or name in ASKED | HEROKU_VALUES.keys()):
                continue
            takes = f" Takes {accepted(info)}." if accepted(info) else ""
            described = (
                _describe(info, takes)
                .replace("`", "")
                .replace("see docs/security.md", "the manual's Security page says which")
            )
            entry: dict[str, Any] = {"description": described, "required": required}
            if name in GENERATED:
                entry["generator"] = "secret"
                entry["description"] += READ_BACK if name in READ_BY_PEOPLE else ""
            if name in HEROKU_VALUES:
                entry["value"] = HEROKU_VALUES[name]
            env[name] = entry
    app = {
        "name": "wpf-bridge",
        "description": "Ortto webhooks to WordPress users, and WordPress's changes back to Ortto.",
        "keywords": ["ortto", "wordpress", "webhooks", "wp-fusion"],
        "buildpacks": [{"url": "heroku/python"}],
        "addons": [{"plan": "heroku-postgresql"}],
        "formation": {"web": {"quantity": 1}, "worker": {"quantity": 1}},
        "success_url": "/console/",
        "env": env,
    }
    return json.dumps(app, indent=2) + "\n"


def files() -> dict[str, str]:
    """Each derived file (a path from the repository's root) and the text the declarations give it."""
    return {ENV_EXAMPLE: env_example(), REFERENCE: reference(), APP_JSON: app_json()}


def stale() -> list[str]:
    """The derived files whose text differs from what the declarations give."""
    return [name for name, text in files().items() if not (ROOT / name).is_file() or (ROOT / name).read_text() != text]


def main(argv: list[str] | None = None) -> int:
    """Rewrite the derived files, or with ``--check`` only name those that differ (exit 1)."""
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__)
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file differs")
    if parser.parse_args(argv).check:
        for name in stale():
            print(f"{name} differs from wpf_bridge/settings.py: run `{COMMAND}`")
        return 1 if stale() else 0
    for name, text in files().items():
        (ROOT / name).parent.mkdir(exist_ok=True)
        (ROOT / name).write_text(text)
        print(f"wrote {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
