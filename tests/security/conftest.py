"""The web tests' worlds (``api``: one rolled-back connection; ``live_api``: a database of its
own behind a pool, for requests that really run at once), for the red-team scenarios."""

from tests.web.conftest import api, live_api

__all__ = ["api", "live_api"]
