"""Where Redis is: a URL read from environment variables whose names (only) a config holds."""

from __future__ import annotations

import os
from urllib.parse import quote

from ..errors import ConfigError

__all__ = ["url_from_env"]


def url_from_env(url_env: str | None, host_env: str | None, port_env: str | None,
                 password_env: str | None) -> str:
    """The Redis URL from environment variables (only their names are ever stored or exported)."""
    if url_env is not None:
        if host_env or port_env or password_env:
            raise ConfigError("give url_env, or host_env (with port_env, password_env), not both", field="state")
        url = os.environ.get(url_env)
        if not url:
            raise ConfigError(f"environment variable {url_env} is not set (the Redis URL, e.g. "
                              "redis://127.0.0.1:6379/0)", field="state.url_env")
        return url
    if host_env is None:
        raise ConfigError("name where Redis is: url or url_env (or host_env)", field="state")
    host = os.environ.get(host_env)
    if not host:
        raise ConfigError(f"environment variable {host_env} is not set (the Redis host)", field="state.host_env")
    port = os.environ.get(port_env, "6379") if port_env else "6379"
    password = os.environ.get(password_env) if password_env else None
    auth = f":{quote(password, safe='')}@" if password else ""
    return f"redis://{auth}{host}:{port}/0"
