"""The companion must-use plugin for WordPress, shipped inside the package."""
from __future__ import annotations

import re
from importlib import resources


def source() -> str:
    return resources.files("wpf_bridge").joinpath("plugin/wpf-bridge.php").read_text(encoding="utf-8")


def version() -> str:
    """The plugin version this bridge ships (and needs on the site)."""
    found = re.search(r"WPF_BRIDGE_PLUGIN_VERSION = '([^']+)'", source())
    assert found, "the plugin declares its version"
    return found.group(1)
