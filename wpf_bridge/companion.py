"""The companion must-use plugin for WordPress, shipped inside the package."""

from __future__ import annotations

import os
import re
import tempfile
from importlib import resources
from pathlib import Path


def source() -> str:
    return resources.files("wpf_bridge").joinpath("plugin/wpf-bridge.php").read_text(encoding="utf-8")


def version() -> str:
    """The plugin version this bridge ships (and needs on the site)."""
    found = re.search(r"WPF_BRIDGE_PLUGIN_VERSION = '([^']+)'", source())
    assert found, "the plugin declares its version"
    return found.group(1)


def install(wordpress: Path) -> Path:
    """Write the plugin into ``wordpress/wp-content/mu-plugins/`` (or ``wordpress/mu-plugins/``
    when given the wp-content folder), creating the folder; return the file written. The file is
    replaced in one rename, so a site serving requests never loads half of it."""
    content = wordpress / "wp-content"
    if not content.is_dir():
        if wordpress.name != "wp-content" and not (wordpress / "plugins").is_dir():
            raise ValueError(f"{wordpress} is not a WordPress folder (it has no wp-content/)")
        content = wordpress
    folder = content / "mu-plugins"
    folder.mkdir(exist_ok=True)
    target = folder / "wpf-bridge.php"
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".wpf-bridge-", suffix=".php")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(source())
    os.chmod(temporary, 0o644)  # the web server's user reads it
    os.replace(temporary, target)
    return target
