"""The web UI: Settings → Webhooks, the execution history, test inboxes. Server-rendered
pages on the same service as the API; no front-end build step."""

from .routes import SignInRequired, router, static_files

__all__ = ["SignInRequired", "router", "static_files"]
