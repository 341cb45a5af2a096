"""A loopback Hugging Face Hub for tests: speaks the HTTP API that huggingface_hub calls, records what it received.

It binds 127.0.0.1 on a free port, keeps repos, commits, LFS objects and collections in memory, and lets a
test assert on exactly what a push sent (files byte for byte, the commit message, the card) or make the next
commit / LFS upload fail once to test resumed pushes.

Routes implemented (huggingface_hub 1.x): ``GET /api/whoami-v2``; ``POST /api/repos/create``;
``GET /api/{type}s/{id}[/revision/{rev}]`` (repo info with siblings); ``POST /api/{type}s/{id}/preupload/{rev}``;
``POST /{prefix}{id}.git/info/lfs/objects/batch`` + pre-signed ``PUT`` (no Authorization) + ``verify``;
``POST /api/{type}s/{id}/commit/{rev}`` (NDJSON, ``create_pr``); ``POST /api/{type}s/{id}/branch/{name}``;
``GET /api/{type}s/{id}/tree/{rev}[/path]``; ``GET /api/{type}s/{id}/commits/{rev}``; ``POST /api/validate-yaml``
(Hub-like metadata checks); ``HEAD``/``GET /{prefix}{id}/resolve/{rev}/{path}`` (quoted ETags, X-Repo-Commit);
collections (``GET/POST /api/collections``, ``GET /api/collections/{slug}``, ``POST .../items``); for Spaces
``GET /api/spaces/{id}/runtime`` and ``/variables`` / ``/secrets`` (kept in ``repo.settings``).
More routes can be added per test with ``hub.route(method, regex, handler)``.

Example:
    >>> with HubServer() as hub, hub.client_env():          # doctest: +SKIP
    ...     from huggingface_hub import HfApi
    ...     HfApi().create_repo("tester/demo")
    ...     HfApi().upload_file(path_or_fileobj=b"hi", path_in_repo="a.txt", repo_id="tester/demo")
    ...     hub.repos["tester/demo"].files()["a.txt"]
    b'hi'

For a subprocess (e.g. the ``hfcompress`` CLI) pass ``env={**os.environ, **hub.env()}``.
"""

from __future__ import annotations

import base64
import contextlib
import fnmatch
import hashlib
import importlib
import json
import os
import re
import secrets
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

# What the Hub stores through LFS by default (its .gitattributes) and the size above which any file goes to LFS.
LFS_PATTERNS = ("*.safetensors", "*.bin", "*.pt", "*.pth", "*.ckpt", "*.gguf", "*.onnx", "*.h5", "*.msgpack",
                "*.npy", "*.npz", "*.pkl", "*.zip", "*.tar.gz", "*.model", "*.ot", "*.parquet", "*.arrow")
LFS_SIZE_THRESHOLD = 10 * 1024 * 1024
BASE_MODEL_RELATIONS = ("adapter", "merge", "quantized", "finetune")
_TYPE_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a blob (what the Hub reports as ``oid`` for regular files)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _lfs_pointer(oid: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n".encode()


@dataclass
class RepoFile:
    """One file at one commit: its bytes, and its LFS oid (sha256) when stored through LFS."""

    path: str
    data: bytes
    lfs_oid: str | None = None

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def blob_id(self) -> str:
        return git_blob_sha1(_lfs_pointer(self.lfs_oid, self.size)) if self.lfs_oid else git_blob_sha1(self.data)

    @property
    def oid(self) -> str:
        """What preupload reports: sha256 for LFS files, the git blob sha1 for regular ones."""
        return self.lfs_oid or self.blob_id


@dataclass
class Commit:
    """A commit as received: message, parent, the full file tree after it, and what it added or deleted."""

    oid: str
    summary: str
    description: str
    parent: str | None
    tree: dict[str, RepoFile]
    added: list[str]
    deleted: list[str]
    created_at: float
    branch: str


@dataclass
class Repo:
    """A repo on the loopback Hub. ``files(rev)`` gives ``{path: bytes}``; ``commits`` holds every commit, oldest first."""

    repo_id: str
    repo_type: str = "model"
    private: bool = False
    settings: dict[str, Any] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    commits: list[Commit] = field(default_factory=list)
    lfs_objects: dict[str, bytes] = field(default_factory=dict)
    pull_requests: list[str] = field(default_factory=list)

    def commit(self, revision: str = "main") -> Commit:
        """The commit a branch, ``refs/pr/N`` or commit sha points at."""
        oid = self.branches.get(revision, revision)
        for commit in self.commits:
            if commit.oid == oid:
                return commit
        raise KeyError(revision)

    def files(self, revision: str = "main") -> dict[str, bytes]:
        """``{path: bytes}`` of every file at ``revision``."""
        return {path: f.data for path, f in self.commit(revision).tree.items()}

    @property
    def last_commit(self) -> Commit:
        return self.commit("main")


class HubServer:
    """An in-memory Hub on 127.0.0.1 (port 0) for tests. Use as a context manager.

    Attributes:
        url: the endpoint, e.g. ``http://127.0.0.1:40123`` (set it as HF_ENDPOINT).
        token: the one valid token (``hf_`` + random hex). ``user``: the account it belongs to.
        repos: ``{repo_id: Repo}``. ``collections``: ``{slug: dict}`` in the Hub's JSON shape.
        requests: ``[(method, path)]`` of every request, in order (no headers: they would hold the token).
        lfs_puts: LFS oids whose bytes were received through the pre-signed PUT (one entry per PUT).
        validations: ``[(ok, errors)]`` of every ``validate-yaml`` call.

    Example:
        >>> with HubServer() as hub:                                # doctest: +SKIP
        ...     hub.fail_next("commit")                             # the next commit gets an HTTP 500
    """

    def __init__(self, *, user: str = "tester", orgs: tuple[str, ...] = ("hfcompress-org",), token: str | None = None) -> None:
        self.user = user
        self.orgs = tuple(orgs)
        self.token = token or "hf_" + secrets.token_hex(16)
        self.repos: dict[str, Repo] = {}
        self.collections: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        # Everything each request carried except its Authorization header: what a leaked secret would show up in.
        self.received: list[bytes] = []
        self.lfs_puts: list[str] = []
        self.validations: list[tuple[bool, list[str]]] = []
        self._failures: dict[str, list[int]] = {}
        self._routes: list[tuple[str, re.Pattern[str], Callable[..., Any]]] = []
        self._lock = threading.RLock()
        self._sign_key = secrets.token_hex(8)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._home: tempfile.TemporaryDirectory[str] | None = None
        self.url = ""

    # -- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> "HubServer":
        hub = self

        class Handler(_Handler):
            server_hub = hub

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="hub-server", daemon=True)
        self._thread.start()
        self._home = tempfile.TemporaryDirectory(prefix="hub-client-home-")
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._home is not None:
            self._home.cleanup()
            self._home = None

    def __enter__(self) -> "HubServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- client configuration -------------------------------------------------------------------------------
    def env(self, token: str | None | bool = True) -> dict[str, str]:
        """Environment variables that point huggingface_hub at this server (for a subprocess).

        ``token=True`` puts the valid token in HF_TOKEN, a string puts that one, None/False leaves HF_TOKEN out
        (the caller should then drop it from its own environment too).
        """
        assert self._home is not None, "start the server first"
        env = {
            "HF_ENDPOINT": self.url,
            "HF_HOME": self._home.name,
            "HF_HUB_DISABLE_XET": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HUB_OFFLINE": "0",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            "NO_PROXY": "127.0.0.1,localhost",
        }
        if token is True:
            env["HF_TOKEN"] = self.token
        elif token:
            env["HF_TOKEN"] = str(token)
        return env

    @contextlib.contextmanager
    def client_env(self, token: str | None | bool = True) -> Iterator[None]:
        """Point huggingface_hub in *this* process at the server, and restore everything on exit.

        huggingface_hub reads HF_ENDPOINT, HF_HOME and HF_HUB_DISABLE_XET into ``huggingface_hub.constants`` at
        import time, so setting the environment is not enough once another test imported it: the constants
        module is reloaded after the variables are set, and again after they are restored.
        """
        names = [*self.env(token), "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"]
        saved = {name: os.environ.get(name) for name in names}
        for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
            os.environ.pop(name, None)
        os.environ.update(self.env(token))
        _reload_hf_constants()
        try:
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            _reload_hf_constants()

    # -- test controls --------------------------------------------------------------------------------------
    def fail_next(self, what: str, *, times: int = 1, status: int = 500) -> None:
        """Make the next ``times`` requests of a kind fail with ``status``.

        Kinds: ``"commit"``, ``"lfs_put"`` (the pre-signed upload), ``"lfs_batch"``, ``"preupload"``, ``"create_repo"``.
        Note: huggingface_hub retries 408/429/500/502/503/504 on preupload, LFS batch and PUT (with back-off);
        use e.g. 403 there to fail at once.
        """
        with self._lock:
            self._failures.setdefault(what, []).extend([status] * times)

    def route(self, method: str, pattern: str, handler: Callable[["_Request"], tuple[int, Any] | tuple[int, Any, dict[str, str]]]) -> None:
        """Add a route: ``handler(request)`` returns ``(status, json_body[, headers])``; checked before built-ins."""
        self._routes.append((method.upper(), re.compile(pattern), handler))

    def uploaded_paths(self, repo_id: str) -> list[list[str]]:
        """The paths each commit of ``repo_id`` added (oldest first; the repo's initial commit left out)."""
        return [c.added for c in self.repos[repo_id].commits[1:]]

    def collection_by_title(self, title: str) -> dict[str, Any] | None:
        """The collection with this title, or None."""
        for collection in self.collections.values():
            if collection["title"] == title:
                return collection
        return None

    # -- internals used by the handler ----------------------------------------------------------------------
    def _take_failure(self, what: str) -> int | None:
        with self._lock:
            queue = self._failures.get(what)
            if queue:
                return queue.pop(0)
        return None

    def _sign(self, text: str) -> str:
        return hashlib.sha256((self._sign_key + text).encode()).hexdigest()[:32]

    def _create_repo(self, repo_id: str, repo_type: str, private: bool, settings: dict[str, Any]) -> Repo:
        attributes = "".join(f"{pattern} filter=lfs diff=lfs merge=lfs -text\n" for pattern in LFS_PATTERNS)
        repo = Repo(repo_id=repo_id, repo_type=repo_type, private=private, settings=settings)
        initial = RepoFile(".gitattributes", attributes.encode())
        commit = Commit(oid=_new_oid(), summary="initial commit", description="", parent=None,
                        tree={initial.path: initial}, added=[initial.path], deleted=[], created_at=time.time(), branch="main")
        repo.commits.append(commit)
        repo.branches["main"] = commit.oid
        self.repos[repo_id] = repo
        return repo


def _new_oid() -> str:
    return hashlib.sha1(uuid.uuid4().bytes).hexdigest()


def _reload_hf_constants() -> None:
    import huggingface_hub.constants as constants

    importlib.reload(constants)


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(ts))


class HTTPError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


@dataclass
class _Request:
    """What a route handler gets: method, path, query, JSON/body, and the authenticated user (or None)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: Any
    body: bytes
    user: str | None

    def json(self) -> Any:
        return json.loads(self.body or b"null")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Without this, every small response waits ~40 ms for the delayed ACK (Nagle + HTTP/1.1 keep-alive).
    disable_nagle_algorithm = True
    server_hub: HubServer

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass

    # -- plumbing -------------------------------------------------------------------------------------------
    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None, raw: bytes | None = None) -> None:
        data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        self.send_response(status)
        if raw is None:
            self.send_header("Content-Type", "application/json")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _user(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        if not auth:
            return None
        if auth != f"Bearer {self.server_hub.token}":
            raise HTTPError(401, "Invalid credentials in Authorization header", "InvalidCredentials")
        return self.server_hub.user

    def _dispatch(self) -> None:
        hub = self.server_hub
        split = urlsplit(self.path)
        path = split.path
        query = parse_qs(split.query)
        body = self._read_body() if self.command in ("POST", "PUT", "PATCH", "DELETE") else b""
        with hub._lock:
            hub.requests.append((self.command, path))
            headers = "".join(f"{k}: {v}\n" for k, v in self.headers.items() if k.lower() != "authorization")
            hub.received.append(f"{self.command} {self.path}\n{headers}\n".encode() + body)
        try:
            # Pre-signed LFS uploads carry no Authorization (like S3 URLs): check the signature only.
            if self.command == "PUT" and path.startswith("/_lfs/"):
                return self._send(*self._lfs_put(path, query, body))
            req = _Request(self.command, path, query, self.headers, body, self._user())
            for method, pattern, handler in hub._routes:
                match = pattern.fullmatch(path)
                if method == self.command and match:
                    return self._send(*handler(req))
            return self._send(*self._builtin(req))
        except HTTPError as err:
            headers = {"X-Error-Message": err.message}
            if err.code:
                headers["X-Error-Code"] = err.code
            self._send(err.status, {"error": err.message}, headers)

    do_GET = do_POST = do_PUT = do_HEAD = do_PATCH = do_DELETE = _dispatch  # type: ignore[assignment]

    # -- routing --------------------------------------------------------------------------------------------
    def _builtin(self, req: _Request) -> tuple:
        p, m = req.path, req.method
        if p == "/api/whoami-v2" and m == "GET":
            return self._whoami(req)
        if p == "/api/repos/create" and m == "POST":
            return self._repos_create(req)
        if p == "/api/validate-yaml" and m == "POST":
            return self._validate_yaml(req)
        if p == "/api/collections":
            return self._collections_list(req) if m == "GET" else self._collection_create(req)
        match = re.fullmatch(r"/api/collections/([^/]+/[^/]+)(/items)?", p)
        if match:
            return self._collection(req, match.group(1), bool(match.group(2)))
        match = re.fullmatch(r"/api/(model|dataset|space)s/([^/]+/[^/]+)(?:/(.*))?", p)
        if match:
            return self._repo_api(req, match.group(1), match.group(2), match.group(3) or "")
        match = re.fullmatch(r"/(datasets/|spaces/)?([^/]+/[^/]+)\.git/info/lfs/objects/batch", p)
        if match and m == "POST":
            return self._lfs_batch(req, {"datasets/": "dataset", "spaces/": "space"}.get(match.group(1) or "", "model"), match.group(2))
        match = re.fullmatch(r"/_lfs_verify/(model|dataset|space)/([^/]+/[^/]+)/([0-9a-f]{64})", p)
        if match and m == "POST":
            return self._lfs_verify(req, match.group(1), match.group(2), match.group(3))
        match = re.fullmatch(r"/(datasets/|spaces/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)", p)
        if match and m in ("GET", "HEAD"):
            repo_type = {"datasets/": "dataset", "spaces/": "space"}.get(match.group(1) or "", "model")
            return self._resolve(req, repo_type, match.group(2), unquote(match.group(3)), unquote(match.group(4)))
        raise HTTPError(404, f"no route for {m} {p} on the loopback Hub")

    def _need_user(self, req: _Request) -> str:
        if req.user is None:
            raise HTTPError(401, "You must be authenticated to access this endpoint", "Unauthorized")
        return req.user

    def _repo(self, req: _Request, repo_type: str, repo_id: str, write: bool = False) -> Repo:
        hub = self.server_hub
        repo = hub.repos.get(repo_id)
        if repo is None or repo.repo_type != repo_type or (repo.private and req.user is None):
            raise HTTPError(404, "Repository not found", "RepoNotFound")
        if write:
            user = self._need_user(req)
            if repo_id.split("/")[0] not in (user, *hub.orgs):
                raise HTTPError(403, f"You don't have the rights to write to {repo_id}", "Forbidden")
        return repo

    def _commit_at(self, repo: Repo, revision: str) -> Commit:
        try:
            return repo.commit(revision)
        except KeyError:
            raise HTTPError(404, f"Invalid rev id: {revision}", "RevisionNotFound") from None

    # -- account and repos ----------------------------------------------------------------------------------
    def _whoami(self, req: _Request) -> tuple:
        user = self._need_user(req)
        hub = self.server_hub
        return 200, {
            "type": "user", "id": "0" * 24, "name": user, "fullname": user.title(), "email": None,
            "orgs": [{"type": "org", "name": org, "roleInOrg": "admin"} for org in hub.orgs],
            "auth": {"type": "access_token", "accessToken": {"displayName": "loopback", "role": "write"}},
            "isPro": False, "canPay": False,
        }

    def _repos_create(self, req: _Request) -> tuple:
        user = self._need_user(req)
        hub = self.server_hub
        if (status := hub._take_failure("create_repo")) is not None:
            raise HTTPError(status, "injected create_repo failure")
        data = req.json()
        owner = data.get("organization") or user
        if owner not in (user, *hub.orgs):
            raise HTTPError(403, f"You don't have the rights to create a repo under {owner}", "Forbidden")
        name = data["name"]
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}", name):
            raise HTTPError(400, f"Invalid repo name {name!r}")
        repo_id = f"{owner}/{name}"
        repo_type = data.get("type") or "model"
        url = f"{hub.url}/{_TYPE_PREFIX[repo_type]}{repo_id}"
        with hub._lock:
            if repo_id in hub.repos:
                # The Hub answers 409 with the url too (huggingface_hub reads it when exist_ok=True).
                return 409, {"error": "You already created this model repo", "url": url}, {"X-Error-Code": "RepoExists"}
            private = data.get("visibility") == "private" or bool(data.get("private"))
            settings = {k: v for k, v in data.items() if k not in ("name", "organization", "type", "visibility", "private")}
            hub._create_repo(repo_id, repo_type, private, settings)
        return 200, {"url": url, "name": repo_id, "id": "0" * 24}

    def _repo_api(self, req: _Request, repo_type: str, repo_id: str, rest: str) -> tuple:
        hub = self.server_hub
        m = req.method
        if rest == "" or rest.startswith("revision/"):
            repo = self._repo(req, repo_type, repo_id)
            return 200, self._info(repo, unquote(rest[len("revision/"):]) if rest else "main")
        if rest.startswith("preupload/") and m == "POST":
            return self._preupload(req, self._repo(req, repo_type, repo_id, write=True), unquote(rest[len("preupload/"):]))
        if rest.startswith("commit/") and m == "POST":
            return self._commit(req, self._repo(req, repo_type, repo_id, write=True), unquote(rest[len("commit/"):]))
        if rest.startswith("branch/") and m == "POST":
            repo = self._repo(req, repo_type, repo_id, write=True)
            branch = unquote(rest[len("branch/"):])
            start = (req.json() or {}).get("startingPoint") or "main"
            with hub._lock:
                if branch in repo.branches:
                    raise HTTPError(409, f"Branch {branch} already exists", "BranchExists")
                repo.branches[branch] = self._commit_at(repo, start).oid
            return 200, {}
        if rest.startswith("tree/") and m == "GET":
            repo = self._repo(req, repo_type, repo_id)
            revision, _, prefix = rest[len("tree/"):].partition("/")
            commit = self._commit_at(repo, unquote(revision))
            prefix = unquote(prefix).strip("/")
            entries = [self._tree_entry(f) for path, f in sorted(commit.tree.items()) if not prefix or path.startswith(prefix + "/")]
            return 200, entries
        if rest.startswith("commits/") and m == "GET":
            repo = self._repo(req, repo_type, repo_id)
            head = self._commit_at(repo, unquote(rest[len("commits/"):]))
            log, oid = [], head.oid
            by_oid = {c.oid: c for c in repo.commits}
            while oid:
                c = by_oid[oid]
                log.append({"id": c.oid, "title": c.summary, "message": c.description, "authors": [{"user": hub.user}],
                            "date": _iso(c.created_at)})
                oid = c.parent
            return 200, log
        if repo_type == "space" and rest == "runtime" and m == "GET":
            repo = self._repo(req, repo_type, repo_id)
            return 200, self._info(repo, "main")["runtime"]
        if repo_type == "space" and rest in ("variables", "secrets") and m in ("GET", "POST", "DELETE"):
            # Secrets are kept like variables so tests can assert on them; the real Hub never returns their values.
            repo = self._repo(req, repo_type, repo_id, write=m != "GET")
            store = repo.settings.setdefault(rest, {})
            if m == "POST":
                data = req.json()
                store[data["key"]] = {"value": data.get("value"), "description": data.get("description"),
                                      "updatedAt": _iso(time.time())}
            elif m == "DELETE":
                store.pop(req.json()["key"], None)
            if rest == "secrets" or m == "DELETE":
                return 200, {}
            return 200, store
        raise HTTPError(404, f"no route for {m} /api/{repo_type}s/{repo_id}/{rest} on the loopback Hub")

    def _tree_entry(self, f: RepoFile) -> dict[str, Any]:
        entry: dict[str, Any] = {"type": "file", "oid": f.blob_id, "size": f.size, "path": f.path}
        if f.lfs_oid:
            entry["lfs"] = {"oid": f.lfs_oid, "size": f.size, "pointerSize": len(_lfs_pointer(f.lfs_oid, f.size))}
        return entry

    def _info(self, repo: Repo, revision: str) -> dict[str, Any]:
        commit = self._commit_at(repo, revision)
        siblings = []
        for path, f in sorted(commit.tree.items()):
            sibling: dict[str, Any] = {"rfilename": path, "size": f.size, "blobId": f.blob_id}
            if f.lfs_oid:
                sibling["lfs"] = {"sha256": f.lfs_oid, "size": f.size, "pointerSize": len(_lfs_pointer(f.lfs_oid, f.size))}
            siblings.append(sibling)
        card_data = None
        readme = commit.tree.get("README.md")
        if readme is not None:
            card_data = _front_matter(readme.data.decode("utf-8", "replace"))[0]
        info: dict[str, Any] = {
            "_id": "0" * 24, "id": repo.repo_id, "author": repo.repo_id.split("/")[0], "sha": commit.oid,
            "lastModified": _iso(commit.created_at), "createdAt": _iso(repo.commits[0].created_at),
            "private": repo.private, "disabled": False, "gated": False, "downloads": 0, "likes": 0,
            "tags": list((card_data or {}).get("tags") or []), "siblings": siblings, "cardData": card_data,
        }
        if repo.repo_type == "model" and card_data:
            info["library_name"] = card_data.get("library_name")
            info["pipeline_tag"] = card_data.get("pipeline_tag")
        if repo.repo_type == "space":
            info["sdk"] = repo.settings.get("sdk")
            info["runtime"] = {"stage": "RUNNING", "hardware": {"current": "cpu-basic", "requested": "cpu-basic"},
                               "storage": None, "gcTimeout": None, "replicas": {"current": 1, "requested": 1}}
        return info

    # -- upload ---------------------------------------------------------------------------------------------
    def _preupload(self, req: _Request, repo: Repo, revision: str) -> tuple:
        hub = self.server_hub
        if (status := hub._take_failure("preupload")) is not None:
            raise HTTPError(status, "injected preupload failure")
        # With create_pr the commit starts from main; the oids are those of the branch the files would land on.
        tree = self._commit_at(repo, "main" if req.query.get("create_pr") else revision).tree
        files = []
        for item in req.json()["files"]:
            path, size = item["path"], int(item["size"])
            lfs = size >= LFS_SIZE_THRESHOLD or any(fnmatch.fnmatch(path.rsplit("/", 1)[-1], pat) for pat in LFS_PATTERNS)
            existing = tree.get(path)
            files.append({"path": path, "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False,
                          "oid": existing.oid if existing else None})
        return 200, {"files": files, "commitOid": self._commit_at(repo, "main").oid}

    def _lfs_batch(self, req: _Request, repo_type: str, repo_id: str) -> tuple:
        hub = self.server_hub
        repo = self._repo(req, repo_type, repo_id, write=True)
        if (status := hub._take_failure("lfs_batch")) is not None:
            raise HTTPError(status, "injected LFS batch failure")
        data = req.json()
        objects = []
        for obj in data["objects"]:
            oid, size = obj["oid"], int(obj["size"])
            entry: dict[str, Any] = {"oid": oid, "size": size}
            # An object the repo already holds gets no actions: the client then skips its upload.
            if oid not in repo.lfs_objects:
                target = f"{repo_type}/{repo_id}/{oid}"
                entry["actions"] = {
                    "upload": {"href": f"{hub.url}/_lfs/{target}?sig={hub._sign(target)}", "header": {}},
                    "verify": {"href": f"{hub.url}/_lfs_verify/{target}", "header": {}},
                }
            objects.append(entry)
        return 200, {"transfer": "basic", "objects": objects}

    def _lfs_put(self, path: str, query: dict[str, list[str]], body: bytes) -> tuple:
        hub = self.server_hub
        if "Authorization" in self.headers:
            # Real pre-signed URLs reject an extra Authorization header; the client must not send one.
            raise HTTPError(400, "pre-signed upload URLs take no Authorization header")
        match = re.fullmatch(r"/_lfs/((model|dataset|space)/([^/]+/[^/]+)/([0-9a-f]{64}))", path)
        if not match or query.get("sig", [""])[0] != hub._sign(match.group(1)):
            raise HTTPError(403, "SignatureDoesNotMatch")
        if (status := hub._take_failure("lfs_put")) is not None:
            raise HTTPError(status, "injected LFS upload failure (e.g. an expired pre-signed URL)")
        oid = match.group(4)
        if hashlib.sha256(body).hexdigest() != oid:
            raise HTTPError(400, "uploaded bytes do not match the LFS oid")
        with hub._lock:
            hub.repos[match.group(3)].lfs_objects[oid] = body
            hub.lfs_puts.append(oid)
        return 200, None, {"ETag": f'"{hashlib.md5(body).hexdigest()}"'}

    def _lfs_verify(self, req: _Request, repo_type: str, repo_id: str, oid: str) -> tuple:
        repo = self._repo(req, repo_type, repo_id, write=True)
        data = req.json()
        stored = repo.lfs_objects.get(oid)
        if stored is None or len(stored) != int(data.get("size", -1)):
            raise HTTPError(404, f"LFS object {oid} not found or of the wrong size")
        return 200, {}

    def _commit(self, req: _Request, repo: Repo, revision: str) -> tuple:
        hub = self.server_hub
        if (status := hub._take_failure("commit")) is not None:
            raise HTTPError(status, "injected commit failure")
        lines = [json.loads(line) for line in req.body.decode().splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HTTPError(400, "the commit payload must start with a header line")
        header = lines[0]["value"]
        create_pr = bool(req.query.get("create_pr"))
        with hub._lock:
            base = self._commit_at(repo, "main" if create_pr and revision == "main" else revision)
            if header.get("parentCommit") and header["parentCommit"] != base.oid:
                raise HTTPError(412, "A commit has happened since. Please refresh and try again.", "PreconditionFailed")
            tree = dict(base.tree)
            added, deleted = [], []
            for line in lines[1:]:
                key, value = line["key"], line["value"]
                if key == "file":
                    data = base64.b64decode(value["content"]) if value.get("encoding") == "base64" else value["content"].encode()
                    tree[value["path"]] = RepoFile(value["path"], data)
                    added.append(value["path"])
                elif key == "lfsFile":
                    stored = repo.lfs_objects.get(value["oid"])
                    if stored is None:
                        raise HTTPError(422, f"LFS file {value['path']} ({value['oid']}) was never uploaded", "LfsObjectMissing")
                    tree[value["path"]] = RepoFile(value["path"], stored, lfs_oid=value["oid"])
                    added.append(value["path"])
                elif key == "deletedFile":
                    if tree.pop(value["path"], None) is None:
                        raise HTTPError(404, "A file with this name doesn't exist", "EntryNotFound")
                    deleted.append(value["path"])
                elif key == "deletedFolder":
                    prefix = value["path"].rstrip("/") + "/"
                    gone = [p for p in tree if p.startswith(prefix)]
                    for p in gone:
                        tree.pop(p)
                    deleted.extend(gone)
                else:
                    raise HTTPError(400, f"unknown commit operation {key!r}")
            if "README.md" in added:
                errors = _validate_card(tree["README.md"].data.decode("utf-8", "replace"), repo.repo_type)
                if errors:
                    raise HTTPError(400, "Invalid metadata in README.md: " + "; ".join(errors), "BadRequest")
            if create_pr:
                number = len(repo.pull_requests) + 1
                branch = f"refs/pr/{number}"
                repo.pull_requests.append(branch)
            else:
                branch = revision
            commit = Commit(oid=_new_oid(), summary=header.get("summary", ""), description=header.get("description", ""),
                            parent=base.oid, tree=tree, added=added, deleted=deleted, created_at=time.time(), branch=branch)
            repo.commits.append(commit)
            repo.branches[branch] = commit.oid
        url = f"{hub.url}/{_TYPE_PREFIX[repo.repo_type]}{repo.repo_id}"
        body = {"commitUrl": f"{url}/commit/{commit.oid}", "commitOid": commit.oid, "success": True}
        if create_pr:
            body["pullRequestUrl"] = f"{url}/discussions/{len(repo.pull_requests)}"
        return 200, body

    # -- download -------------------------------------------------------------------------------------------
    def _resolve(self, req: _Request, repo_type: str, repo_id: str, revision: str, path: str) -> tuple:
        repo = self._repo(req, repo_type, repo_id)
        commit = self._commit_at(repo, revision)
        f = commit.tree.get(path)
        headers = {"X-Repo-Commit": commit.oid}
        if f is None:
            raise HTTPError(404, "Entry not found", "EntryNotFound")
        headers["ETag"] = f'"{f.blob_id}"'
        if f.lfs_oid:
            headers["X-Linked-Etag"] = f'"{f.lfs_oid}"'
            headers["X-Linked-Size"] = str(f.size)
        headers["Content-Type"] = "application/octet-stream"
        return 200, None, headers, f.data

    # -- card validation ------------------------------------------------------------------------------------
    def _validate_yaml(self, req: _Request) -> tuple:
        data = req.json()
        errors = _validate_card(data.get("content", ""), data.get("repoType", "model"))
        self.server_hub.validations.append((not errors, errors))
        if errors:
            return 400, {"errors": [{"message": e} for e in errors], "warnings": []}
        return 200, {"errors": [], "warnings": []}

    # -- collections ----------------------------------------------------------------------------------------
    def _collections_list(self, req: _Request) -> tuple:
        hub = self.server_hub
        owners = req.query.get("owner", [])
        items = req.query.get("item", [])
        out = []
        for c in hub.collections.values():
            if c["private"] and req.user is None:
                continue
            if owners and c["owner"]["name"] not in owners:
                continue
            if items and not any(f"{i['type']}s/{i['id']}" in items for i in c["items"]):
                continue
            # The Hub lists at most 4 items per collection here; get_collection returns them all.
            out.append({**{k: v for k, v in c.items() if k != "position"}, "items": c["items"][:4]})
        return 200, out

    def _collection_create(self, req: _Request) -> tuple:
        user = self._need_user(req)
        hub = self.server_hub
        data = req.json()
        namespace = data.get("namespace") or user
        if namespace not in (user, *hub.orgs):
            raise HTTPError(403, f"You can't create a collection under {namespace}", "Forbidden")
        with hub._lock:
            for c in hub.collections.values():
                if c["owner"]["name"] == namespace and c["title"] == data["title"]:
                    return 409, {"error": "Collection already exists", "slug": c["slug"]}
            slug = f"{namespace}/{re.sub(r'[^a-z0-9]+', '-', data['title'].lower()).strip('-')}-{secrets.token_hex(12)}"
            collection = {
                "slug": slug, "title": data["title"], "description": data.get("description"),
                "owner": {"name": namespace, "type": "user" if namespace == user else "org"},
                "items": [], "lastUpdated": _iso(time.time()), "position": len(hub.collections),
                "private": bool(data.get("private")), "theme": "indigo", "upvotes": 0, "gating": False,
            }
            hub.collections[slug] = collection
        return 200, collection

    def _collection(self, req: _Request, slug: str, items: bool) -> tuple:
        hub = self.server_hub
        collection = hub.collections.get(slug)
        if collection is None or (collection["private"] and req.user is None):
            raise HTTPError(404, "Collection not found", "CollectionNotFound")
        if not items and req.method == "GET":
            return 200, collection
        if items and req.method == "POST":
            self._need_user(req)
            data = req.json()
            item_id, item_type = data["item"]["id"], data["item"]["type"]
            with hub._lock:
                if item_type in ("model", "dataset", "space"):
                    repo = hub.repos.get(item_id)
                    if repo is None or repo.repo_type != item_type:
                        raise HTTPError(404, f"{item_type} {item_id} not found", "RepoNotFound")
                if any(i["id"] == item_id and i["type"] == item_type for i in collection["items"]):
                    return 409, {"error": "Item already in the collection"}
                item: dict[str, Any] = {"_id": secrets.token_hex(12), "id": item_id, "type": item_type,
                                        "position": len(collection["items"])}
                if data.get("note"):
                    item["note"] = {"text": data["note"], "html": data["note"]}
                collection["items"].append(item)
                collection["lastUpdated"] = _iso(time.time())
            return 200, collection
        raise HTTPError(404, f"no route for {req.method} {req.path} on the loopback Hub")


def _front_matter(text: str) -> tuple[Any, str | None]:
    """(metadata, error) of a README's YAML block; (None, None) when it has none."""
    match = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", text, re.DOTALL)
    if not match:
        return None, None
    try:
        return yaml.safe_load(match.group(1)), None
    except yaml.YAMLError as err:
        return None, f"YAML could not be parsed: {str(err).splitlines()[0]}"


def _validate_card(text: str, repo_type: str) -> list[str]:
    """The metadata checks the Hub applies on push (a useful subset), as a list of error messages."""
    meta, error = _front_matter(text)
    if error:
        return [error]
    if meta is None:
        return []
    if not isinstance(meta, dict):
        return ["metadata must be a YAML mapping"]
    errors = []
    for key in ("tags", "datasets", "base_model", "language", "metrics"):
        value = meta.get(key)
        if value is not None and not (isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))):
            errors.append(f'"{key}" must be a string or a list of strings')
    if repo_type == "model":
        relation = meta.get("base_model_relation")
        if relation is not None:
            if relation not in BASE_MODEL_RELATIONS:
                errors.append(f'"base_model_relation" must be one of {", ".join(BASE_MODEL_RELATIONS)}')
            if not meta.get("base_model"):
                errors.append('"base_model_relation" needs "base_model"')
        for base in [meta["base_model"]] if isinstance(meta.get("base_model"), str) else meta.get("base_model") or []:
            if not re.fullmatch(r"[\w.-]+/[\w.-]+", str(base)):
                errors.append(f'"base_model" {base!r} is not a Hub model id')
        if "model-index" in meta:
            errors.extend(_validate_model_index(meta["model-index"]))
    return errors


def _validate_model_index(model_index: Any) -> list[str]:
    if not isinstance(model_index, list) or not model_index:
        return ['"model-index" must be a non-empty list']
    errors = []
    for entry in model_index:
        if not isinstance(entry, dict) or not entry.get("name"):
            errors.append('"model-index" entries need a "name"')
            continue
        for result in entry.get("results") or []:
            task, dataset = result.get("task") or {}, result.get("dataset") or {}
            if not task.get("type"):
                errors.append('"model-index" results need task.type')
            if not dataset.get("type") or not dataset.get("name"):
                errors.append('"model-index" results need dataset.type and dataset.name')
            for metric in result.get("metrics") or []:
                if not metric.get("type") or "value" not in metric:
                    errors.append('"model-index" metrics need a type and a value')
    return errors
