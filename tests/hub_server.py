"""A small Hugging Face Hub for tests: a threaded HTTP server on 127.0.0.1 speaking the endpoints that
huggingface_hub's own client calls to create a repo, commit files (preupload, LFS batch + basic upload,
NDJSON commit), read repo info with file metadata, create branches and download files (resolve, with the
X-Repo-Commit / ETag / Content-Length headers and Range requests).

The real client is pointed at it through its endpoint setting; nothing in the client is patched. State
lives in memory: repos, branches, commits (each a full snapshot of its files) and LFS objects. Bounded:
loopback only, request bodies capped, sockets time out.
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

import yaml

MAX_BODY = 64 * 1024 * 1024
LFS_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pt", ".pth", ".msgpack", ".onnx")


@dataclass
class Blob:
    data: bytes
    lfs: bool

    @property
    def git_oid(self) -> str:  # git's blob id
        return hashlib.sha1(b"blob %d\0" % len(self.data) + self.data).hexdigest()

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class Repo:
    private: bool = False
    branches: dict[str, str] = field(default_factory=dict)
    commits: dict[str, dict[str, Blob]] = field(default_factory=dict)

    def resolve(self, revision: str) -> str | None:
        if revision in self.branches:
            return self.branches[revision]
        return revision if revision in self.commits else None


class HubState:
    def __init__(self, token: str):
        self.token = token
        self.repos: dict[str, Repo] = {}
        self.lfs: dict[str, bytes] = {}
        self.downloads: list[str] = []  # "repo/path@commit" of every GET of a file
        self.lock = threading.Lock()

    def commit(self, repo_id: str, branch: str, changes: dict[str, Blob], summary: str = "") -> str:
        """Add a commit on `branch` (used by the server and by tests that change a repo behind a lock)."""
        repo = self.repos[repo_id]
        parent = repo.branches.get(branch)
        files = dict(repo.commits.get(parent, {}))
        files.update(changes)
        digest = hashlib.sha1(f"{parent}:{summary}".encode())
        for path in sorted(files):
            digest.update(path.encode() + files[path].sha256.encode())
        sha = digest.hexdigest()
        repo.commits[sha] = files
        repo.branches[branch] = sha
        return sha


class _Handler(BaseHTTPRequestHandler):
    server: "HubServer"
    protocol_version = "HTTP/1.1"
    timeout = 30

    def log_message(self, format, *args):  # quiet
        pass

    # ---- plumbing ---------------------------------------------------------------------------------
    @property
    def state(self) -> HubState:
        return self.server.state

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise ValueError("body too large")
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, payload=None, headers: dict | None = None, body: bytes | None = None,
              head: bool = False) -> None:
        if body is None:
            body = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if payload is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _error(self, status: int, code: str, message: str, head: bool = False) -> None:
        self._send(status, None if head else {"error": message},
                   {"X-Error-Code": code, "X-Error-Message": message}, head=head)

    def _authorised(self, repo: Repo) -> bool:
        return not repo.private or self.headers.get("Authorization") == f"Bearer {self.state.token}"

    def _repo(self, repo_id: str, head: bool = False) -> Repo | None:
        repo = self.state.repos.get(repo_id)
        if repo is None or not self._authorised(repo):
            self._error(404 if repo is None else 401, "RepoNotFound", f"Repository Not Found for url: {repo_id}",
                        head)
            return None
        return repo

    def _writer(self) -> bool:
        if self.headers.get("Authorization") != f"Bearer {self.state.token}":
            self._error(401, "Unauthorized", "Invalid credentials in Authorization header")
            return False
        return True

    # ---- routes -----------------------------------------------------------------------------------
    def do_HEAD(self):
        self._route("HEAD")

    def do_GET(self):
        self._route("GET")

    def do_POST(self):
        self._route("POST")

    def do_PUT(self):
        self._route("PUT")

    def _route(self, method: str) -> None:
        path = unquote(urlsplit(self.path).path)
        try:
            body = self._body() if method in ("POST", "PUT") else b""
            with self.state.lock:
                self._dispatch(method, path, body)
        except (ValueError, KeyError, json.JSONDecodeError) as error:
            self._error(400, "BadRequest", f"bad request: {error}")

    def _dispatch(self, method: str, path: str, body: bytes) -> None:
        base = self.server.url
        if method == "POST" and path == "/api/repos/create":
            if not self._writer():
                return
            data = json.loads(body)
            repo_id = f"{data['organization']}/{data['name']}"
            if repo_id in self.state.repos:
                return self._error(409, "Conflict", "You already created this model repo")
            repo = Repo(private=data.get("visibility") == "private" or bool(data.get("private")))
            self.state.repos[repo_id] = repo
            self.state.commit(repo_id, "main", {}, "initial commit")
            return self._send(200, {"url": f"{base}/{repo_id}", "name": repo_id})
        if method == "POST" and path == "/api/validate-yaml":
            return self._send(200, {"errors": [], "warnings": []})
        if method == "PUT" and path.startswith("/lfs-upload/"):
            oid = path.rsplit("/", 1)[-1]
            if hashlib.sha256(body).hexdigest() != oid:
                return self._error(400, "BadRequest", "content does not match its oid")
            self.state.lfs[oid] = body
            return self._send(200, {})
        match = re.fullmatch(r"/([^/]+/[^/]+)\.git/info/lfs/objects/batch", path)
        if method == "POST" and match:
            if self._repo(match[1]) is None or not self._writer():
                return
            objects = []
            for item in json.loads(body)["objects"]:
                entry = {"oid": item["oid"], "size": item["size"]}
                if item["oid"] not in self.state.lfs:
                    entry["actions"] = {"upload": {"href": f"{base}/lfs-upload/{item['oid']}"}}
                objects.append(entry)
            return self._send(200, {"transfer": "basic", "objects": objects})
        match = re.fullmatch(r"/api/models/([^/]+/[^/]+)/(preupload|commit|branch)/(.+)", path)
        if method == "POST" and match:
            repo = self._repo(match[1])
            if repo is None or not self._writer():
                return
            return getattr(self, f"_{match[2]}")(match[1], repo, match[3], body)
        match = re.fullmatch(r"/api/models/([^/]+/[^/]+)(?:/revision/(.+))?", path)
        if method == "GET" and match:
            return self._info(match[1], match[2] or "main")
        match = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        if method in ("GET", "HEAD") and match:
            return self._resolve(method, *match.groups())
        self._error(404, "NotFound", f"no route for {method} {path}", method == "HEAD")

    def _preupload(self, repo_id: str, repo: Repo, revision: str, body: bytes) -> None:
        files = json.loads(body)["files"]
        self._send(200, {"files": [{"path": f["path"], "shouldIgnore": False,
                                    "uploadMode": "lfs" if f["path"].endswith(LFS_SUFFIXES) else "regular"}
                                   for f in files]})

    def _commit(self, repo_id: str, repo: Repo, revision: str, body: bytes) -> None:
        if revision not in repo.branches:
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        summary, changes = "", {}
        for line in lines:
            value = line["value"]
            if line["key"] == "header":
                summary = value["summary"]
            elif line["key"] == "file":
                changes[value["path"]] = Blob(base64.b64decode(value["content"]), lfs=False)
            elif line["key"] == "lfsFile":
                if value["oid"] not in self.state.lfs:
                    return self._error(400, "BadRequest", f"LFS object {value['oid']} was not uploaded")
                changes[value["path"]] = Blob(self.state.lfs[value["oid"]], lfs=True)
            else:
                return self._error(400, "BadRequest", f"unsupported commit operation {line['key']}")
        sha = self.state.commit(repo_id, revision, changes, summary)
        self._send(200, {"commitUrl": f"{self.server.url}/{repo_id}/commit/{sha}", "commitOid": sha,
                         "pullRequestUrl": None, "success": True})

    def _branch(self, repo_id: str, repo: Repo, branch: str, body: bytes) -> None:
        if branch in repo.branches:
            return self._error(409, "Conflict", f"Reference already exists: refs/heads/{branch}")
        start = (json.loads(body) if body else {}).get("startingPoint") or "main"
        repo.branches[branch] = repo.resolve(start)
        self._send(200, {})

    def _info(self, repo_id: str, revision: str) -> None:
        repo = self._repo(repo_id)
        if repo is None:
            return
        sha = repo.resolve(revision)
        if sha is None:
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        files = repo.commits[sha]
        siblings = []
        for path, blob in sorted(files.items()):
            sibling = {"rfilename": path, "size": len(blob.data), "blobId": blob.git_oid}
            if blob.lfs:
                sibling["lfs"] = {"size": len(blob.data), "sha256": blob.sha256, "pointerSize": 134}
            siblings.append(sibling)
        card = {}
        if "README.md" in files:
            text = files["README.md"].data.decode()
            if text.startswith("---\n"):
                card = yaml.safe_load(text[4:text.index("\n---", 4)]) or {}
        self._send(200, {"id": repo_id, "sha": sha, "private": repo.private, "siblings": siblings,
                         "cardData": card, "tags": card.get("tags", [])})

    def _resolve(self, method: str, repo_id: str, revision: str, path: str) -> None:
        head = method == "HEAD"
        repo = self._repo(repo_id, head)
        if repo is None:
            return
        sha = repo.resolve(revision)
        if sha is None:
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}", head)
        blob = repo.commits[sha].get(path)
        if blob is None:
            return self._error(404, "EntryNotFound", f"{path} does not exist on {revision}", head)
        headers = {"X-Repo-Commit": sha, "ETag": f'"{blob.sha256 if blob.lfs else blob.git_oid}"',
                   "Accept-Ranges": "bytes"}
        data, status = blob.data, 200
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if match and int(match[1]) < len(data):
            start = int(match[1])
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            data, status = data[start:], 206
        if not head:
            self.state.downloads.append(f"{repo_id}/{path}@{sha}")
        self._send(status, headers=headers, body=data, head=head)


class HubServer(ThreadingHTTPServer):
    """`with HubServer(token) as hub: hub.url ...` — serves until the block ends."""

    daemon_threads = True

    def __init__(self, token: str = "hf_testtoken"):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = HubState(token)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "HubServer":
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
