"""Entry point for ``uvicorn --factory rempart.web.asgi:make_app`` (used by ``rempart serve``)."""

from __future__ import annotations

from fastapi import FastAPI

from rempart.config import Settings
from rempart.web.app import create_app


def make_app() -> FastAPI:
    return create_app(Settings())
