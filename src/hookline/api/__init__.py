"""The HTTP API (FastAPI): ``create_app`` builds the ASGI application."""

from .app import create_app

__all__ = ["create_app"]
