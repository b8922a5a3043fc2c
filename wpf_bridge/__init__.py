"""wpf-bridge: Ortto webhooks create and update WordPress users."""

__version__ = "0.1.0"
