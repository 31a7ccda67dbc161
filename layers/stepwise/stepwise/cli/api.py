"""The CLI's one HTTP helper: JSON in, JSON out, and errors in the API's own words."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import requests

DEFAULT_URL = "http://127.0.0.1:3000"
REQUEST_TIMEOUT_SECONDS = 30
MAX_PAGES = 100


class ApiError(Exception):
    """The API refused the request or could not be reached (exit code 4)."""


class Api:
    """The API at ``url``, called with ``token``; ``url_source`` says where the URL came from (for hints)."""

    def __init__(self, url: str, token: str | None, url_source: str = "the default") -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.url_source = url_source
        self._session: requests.Session | None = None

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        auth: bool = True,
    ) -> Any:
        """Send one request and return the parsed JSON answer; raise :class:`ApiError` on any failure."""
        import requests

        if self._session is None:
            self._session = requests.Session()
        all_headers = {"accept": "application/json", **(headers or {})}
        if auth and self.token:
            all_headers["authorization"] = f"Bearer {self.token}"
        try:
            answer = self._session.request(
                method,
                self.url + path,
                json=json_body,
                params=params,
                headers=all_headers,
                timeout=REQUEST_TIMEOUT_SECONDS,
            )
        except requests.ConnectionError as error:
            raise ApiError(unreachable(self.url, self.url_source)) from error
        except requests.RequestException as error:
            raise ApiError(f"{method} {self.url}{path} failed: {error}") from error
        try:
            body = answer.json() if answer.content else None
        except ValueError:
            body = None
        if answer.status_code >= 400:
            message = None
            if isinstance(body, dict):
                message = body.get("error") or body.get("message")
            raise ApiError(f"{message or answer.text[:200] or answer.reason} (HTTP {answer.status_code})")
        if body is None and answer.content:
            raise ApiError(f"{method} {self.url}{path} answered something that is not JSON")
        return body

    def data(self, method: str, path: str, **kwargs: Any) -> Any:
        """The ``data`` of an API envelope."""
        body = self.request(method, path, **kwargs)
        return body.get("data") if isinstance(body, dict) else body

    def message(self, method: str, path: str, **kwargs: Any) -> str:
        """The ``message`` of an API envelope."""
        body = self.request(method, path, **kwargs)
        return str(body.get("message", "")) if isinstance(body, dict) else ""

    def all_pages(self, path: str, params: dict[str, str] | None = None, most: int | None = None) -> list[Any]:
        """Every row of a listing (the first ``most`` of them, when given), following ``nextCursor``."""
        rows: list[Any] = []
        query = {**(params or {}), "limit": "100"}
        for _ in range(MAX_PAGES):
            if most is not None:
                query["limit"] = str(min(100, most - len(rows)))
            body = self.request("GET", path, params=query)
            rows.extend(body.get("data") or [])
            cursor = body.get("nextCursor")
            if not cursor or (most is not None and len(rows) >= most):
                break
            query["cursor"] = str(cursor)
        return rows if most is None else rows[:most]


def unreachable(url: str, source: str) -> str:
    """What to say when nothing answers at ``url``: where that URL came from, and how to give another."""
    return (
        f"cannot reach {url} ({source}): is `make dev` running? "
        "Point the CLI at the API with --url URL or STEPWISE_URL=URL (make dev prints its URL)"
    )
