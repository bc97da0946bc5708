"""A fake Hugging Face Hub on 127.0.0.1, so model downloads are tested without the network.

Serves ``/{repo}/resolve/{revision}/{path}`` as huggingface_hub 2.4 expects; see `hf_env`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import socket
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from urllib.parse import unquote, urlsplit

COMMIT_RE = re.compile(r"[0-9a-f]{40}")
_RANGE_RE = re.compile(r"bytes=(\d+)-(\d*)$")
_REPO_TYPES = {"datasets": "dataset", "spaces": "space"}

RequestLog = tuple[str, str, str | None]


def etag_of(data: bytes, lfs: bool = True) -> str:
    """The blob name huggingface_hub gives `data`: LFS files by sha256, others by git blob sha1."""
    if lfs:
        return hashlib.sha256(data).hexdigest()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def cache_path(home: Path, repo_id: str, commit: str, path_in_repo: str) -> Path:
    """Where `hf_hub_download` puts a model file under HF_HOME (a symlink into ``blobs/``)."""
    folder = "models--" + repo_id.replace("/", "--")
    return Path(home) / "hub" / folder / "snapshots" / commit / path_in_repo


@dataclass
class _Entry:
    data: bytes
    lfs: bool


@dataclass
class _Cut:
    at: int
    times: int | None  # None: every GET


class FakeHub:
    """Model files by (repo, commit, path), with faults to inject and a log of what was asked."""

    def __init__(self) -> None:
        self._repos: dict[tuple[str, str], dict[str, dict[str, _Entry]]] = {}
        self._refs: dict[tuple[str, str], dict[str, str]] = {}
        self._cuts: dict[str, _Cut] = {}
        self._corrupt: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self.requests: list[RequestLog] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- content -------------------------------------------------------------------------------

    def add(
        self,
        repo_id: str,
        revision: str,
        path_in_repo: str,
        data: bytes,
        *,
        lfs: bool = True,
        repo_type: str = "model",
    ) -> None:
        """Register a file at a commit; `lfs` picks the ETag kind, as the real hub does."""
        if not COMMIT_RE.fullmatch(revision):
            raise ValueError(f"revision must be a 40-hex commit sha, got {revision!r}")
        with self._lock:
            commits = self._repos.setdefault((repo_type, repo_id), {})
            commits.setdefault(revision, {})[path_in_repo] = _Entry(bytes(data), lfs)

    def alias(self, repo_id: str, name: str, commit: str, *, repo_type: str = "model") -> None:
        """Let a branch or tag name (e.g. "main") resolve to `commit`."""
        with self._lock:
            if commit not in self._repos.get((repo_type, repo_id), {}):
                raise KeyError(f"unknown commit {commit} of {repo_id}")
            self._refs.setdefault((repo_type, repo_id), {})[name] = commit

    # --- faults --------------------------------------------------------------------------------

    def cut_after(self, path_in_repo: str, n_bytes: int, times: int | None = 1) -> None:
        """Drop the next `times` GETs of the file at file offset `n_bytes` (None: every GET).

        The full Content-Length is announced, so the client sees a connection closed mid-body.
        The offset is absolute: a ``Range: bytes=n_bytes-`` resume that is also cut gets no byte.
        huggingface_hub retries a cut GET 5 times within one call (1 s apart), resuming with
        Range only from the last whole 10 MiB chunk written: one cut is healed silently, a cut
        on every GET fails the call with httpx2.RemoteProtocolError after about 5 s.
        """
        with self._lock:
            self._cuts[path_in_repo] = _Cut(n_bytes, times)

    def corrupt(self, path_in_repo: str, data: bytes) -> None:
        """Serve `data` instead of the registered bytes on GET; HEAD still reports the registered
        size and ETag, so a different length fails huggingface_hub's size check and the same
        length only fails a checksum downstream."""
        with self._lock:
            self._corrupt[path_in_repo] = bytes(data)

    def clear_faults(self) -> None:
        """Serve every file as registered again."""
        with self._lock:
            self._cuts.clear()
            self._corrupt.clear()

    # --- server --------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The endpoint for HF_ENDPOINT."""
        if self._server is None:
            raise RuntimeError("FakeHub is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeHub:
        """Listen on a free port of 127.0.0.1 from a background thread."""
        if self._server is not None:
            return self
        handler = type("_BoundHandler", (_Handler,), {"hub": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop answering: later requests get "connection refused", as with no network."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- lookups for the handler ---------------------------------------------------------------

    def _log(self, method: str, path: str, range_header: str | None) -> None:
        with self._lock:
            self.requests.append((method, path, range_header))

    def _resolve(
        self, repo_type: str, repo_id: str, revision: str, path: str
    ) -> tuple[int, dict[str, str], _Entry | None]:
        """(status, error headers, entry): the hub's answer for a file, before any fault."""
        with self._lock:
            commits = self._repos.get((repo_type, repo_id))
            if commits is None:
                return (
                    404,
                    {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"},
                    None,
                )
            commit = self._refs.get((repo_type, repo_id), {}).get(revision, revision)
            if commit not in commits:
                msg = f"Invalid rev id: {revision}"
                return 404, {"X-Error-Code": "RevisionNotFound", "X-Error-Message": msg}, None
            entry = commits[commit].get(path)
            if entry is None:
                # The real hub names the commit here; huggingface_hub records it under .no_exist/.
                headers = {
                    "X-Error-Code": "EntryNotFound",
                    "X-Error-Message": "Entry not found",
                    "X-Repo-Commit": commit,
                }
                return 404, headers, None
            return 200, {"X-Repo-Commit": commit}, entry

    def _take_fault(self, path: str) -> tuple[bytes | None, int | None]:
        """(replacement body, cut offset) for one GET of `path`, consuming a cut."""
        with self._lock:
            cut = self._cuts.get(path)
            at = None
            if cut is not None:
                at = cut.at
                if cut.times is not None:
                    cut.times -= 1
                    if cut.times <= 0:
                        del self._cuts[path]
            return self._corrupt.get(path), at


class _Handler(BaseHTTPRequestHandler):
    """One request; HTTP/1.0, so no kept-alive connection outlives `FakeHub.stop`."""

    hub: FakeHub
    server_version = "FakeHub/1.0"

    def log_message(self, format: str, *args: object) -> None:
        """Keep test output clean; `FakeHub.requests` is the log."""

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def _answer(self, send_body: bool) -> None:
        url_path = urlsplit(self.path).path
        range_header = self.headers.get("Range")
        self.hub._log(self.command, url_path, range_header)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up
            self._serve(url_path, range_header, send_body)

    def _serve(self, url_path: str, range_header: str | None, send_body: bool) -> None:
        head, sep, tail = url_path.lstrip("/").partition("/resolve/")
        revision, _, file_path = tail.partition("/")
        if not sep or not revision or not file_path:
            self._error(404, {}, "Not Found", send_body)
            return
        repo_type = "model"
        first, _, rest = head.partition("/")
        if first in _REPO_TYPES and rest:
            repo_type, head = _REPO_TYPES[first], rest
        repo_id, revision, file_path = unquote(head), unquote(revision), unquote(file_path)

        status, headers, entry = self.hub._resolve(repo_type, repo_id, revision, file_path)
        if entry is None:
            self._error(status, headers, headers.get("X-Error-Message", "Not Found"), send_body)
            return

        etag = etag_of(entry.data, entry.lfs)
        headers["ETag"] = f'"{etag}"'
        if entry.lfs:
            # get_hf_file_metadata prefers these over ETag/Content-Length.
            headers["X-Linked-Etag"] = f'"{etag}"'
            headers["X-Linked-Size"] = str(len(entry.data))
        headers["Accept-Ranges"] = "bytes"
        headers["Content-Type"] = "application/octet-stream"

        if not send_body:
            headers["Content-Length"] = str(len(entry.data))
            self._send(200, headers)
            return

        replacement, cut_at = self.hub._take_fault(file_path)
        body = entry.data if replacement is None else replacement
        start, end = 0, len(body)
        status = 200
        if range_header is not None:
            match = _RANGE_RE.match(range_header.strip())
            if match is None or int(match.group(1)) >= len(body):
                headers["Content-Range"] = f"bytes */{len(body)}"
                self._error(416, headers, "Range Not Satisfiable", send_body)
                return
            start = int(match.group(1))
            if match.group(2):
                end = min(int(match.group(2)) + 1, len(body))
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{len(body)}"
        headers["Content-Length"] = str(end - start)
        self._send(status, headers)

        stop = end if cut_at is None else max(start, min(cut_at, end))
        self.wfile.write(body[start:stop])
        if stop < end:
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_WR)  # FIN, not RST: a clean short body

    def _error(self, status: int, headers: dict[str, str], message: str, send_body: bool) -> None:
        """A hub-style error: X-Error-Code/-Message headers and a JSON body."""
        body = json.dumps({"error": message}).encode()
        headers = {**headers, "Content-Type": "application/json", "Content-Length": str(len(body))}
        self._send(status, headers)
        if send_body:
            self.wfile.write(body)

    def _send(self, status: int, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()


_DROPPED_ENV = (
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "HF_TOKEN_PATH",
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "HF_HUB_CACHE",
    "HUGGINGFACE_HUB_CACHE",
    "HF_ASSETS_CACHE",
    "HUGGINGFACE_ASSETS_CACHE",
    "HF_XET_CACHE",
    "HF_HUB_ENABLE_HF_TRANSFER",
)


def hf_env(hub: FakeHub, home: Path) -> dict[str, str]:
    """Environment for a subprocess whose huggingface_hub must talk to `hub` only and cache in
    `home`: no token, not offline, no Xet, no telemetry, short metadata timeout."""
    env = {k: v for k, v in os.environ.items() if k not in _DROPPED_ENV}
    no_proxy = ",".join(p for p in (env.get("NO_PROXY"), "127.0.0.1", "localhost") if p)
    env.update(
        HF_ENDPOINT=hub.url,
        HF_HOME=str(home),
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_XET="1",
        HF_HUB_DISABLE_UPDATE_CHECK="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        HF_HUB_ETAG_TIMEOUT="2",
        HF_HUB_DOWNLOAD_TIMEOUT="10",
        NO_PROXY=no_proxy,
        no_proxy=no_proxy,
    )
    return env
