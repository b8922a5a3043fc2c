"""The alert client: posts a message to a Slack-compatible incoming webhook (``WPF_ALERT_WEBHOOK``;
Slack, Mattermost, Rocket.Chat and Discord's ``/slack`` endpoint take ``{"text": ...}``)."""

from __future__ import annotations

from ..errors import TransientError
from .http import new_session, send


class AlertClient:
    def __init__(self, url: str):
        self.url = url
        self.session = new_session()

    def post(self, text: str) -> None:
        """Raises ``TransientError`` (never naming the URL, which is a secret) when it is not taken."""
        response = send(self.session, "the alert webhook", "POST", self.url, json={"text": text})
        if not response.ok:
            raise TransientError(f"the alert webhook answered HTTP {response.status_code}")
