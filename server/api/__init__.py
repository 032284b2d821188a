"""The operator HTTP API (Particle-style paths), served by Hypercorn's Trio worker."""

from .app import create_app
from .serve import bind_api_socket, serve_api

__all__ = ["bind_api_socket", "create_app", "serve_api"]
