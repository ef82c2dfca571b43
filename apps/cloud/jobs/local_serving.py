"""JOB_BACKEND=local, serving: endpoints and traffic splits kept by the console (no model server runs).

State lives under `LOCAL_ENDPOINTS_DIR`: one JSON file per endpoint (`endpoints/<n>.json`: its display
name, the models deployed on it, its traffic split), one per registered model (`models/<n>.json`: its
versions and their aliases), and a counter for the ids. Every change is a read-modify-write under an
exclusive lock (`.lock`, flock), written to a temporary file and renamed over the old one, so a reader
never sees half a file and two workers never lose each other's change.

The rules are Vertex AI's, so that the console behaves the same on both backends:
- `deploy(traffic_percent=n)` gives the new deployed model n % and scales the models that take traffic
  now to share the rest in their proportions (a first deployment takes 100 %, a canary needs something
  to share with); a model version already on the endpoint is adopted, not deployed twice;
- `set_traffic` takes a whole split over deployed models, summing to 100;
- `undeploy` refuses to remove a model that still takes traffic while others remain: the split must
  be set first; undeploying a model that is no longer there does nothing (a retry).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.conf import settings

from apps.cloud.jobs.base import BackendError, DeployedModel, RegisteredModel, split_with

ENDPOINT_NAME = re.compile(r"^endpoints/([0-9]+)$")
MODEL_NAME = re.compile(r"^models/([0-9]+)$")


class LocalServingBackend:
    name = "local"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @classmethod
    def from_settings(cls) -> LocalServingBackend:
        return cls(Path(settings.LOCAL_ENDPOINTS_DIR))

    # -- storage --------------------------------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read(self, relative: str) -> dict[str, Any] | None:
        try:
            return json.loads((self.root / relative).read_text())
        except FileNotFoundError:
            return None
        except ValueError as exc:
            raise BackendError(f"{self.root / relative}: not valid JSON ({exc}).") from exc

    def _write(self, relative: str, data: dict[str, Any]) -> None:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(data, handle, indent=1, sort_keys=True)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def _next_id(self) -> int:
        counter = self._read("counter.json") or {"next": 1}
        value = int(counter["next"])
        self._write("counter.json", {"next": value + 1})
        return value

    def _endpoint_file(self, name: str) -> str:
        match = ENDPOINT_NAME.match(name)
        if not match:
            raise BackendError(f"{name!r} is not a local endpoint name (endpoints/<number>).")
        return f"endpoints/{match.group(1)}.json"

    def _model_file(self, name: str) -> str:
        match = MODEL_NAME.match(name)
        if not match:
            raise BackendError(f"{name!r} is not a local model name (models/<number>).")
        return f"models/{match.group(1)}.json"

    def _endpoint(self, endpoint: str, *, create: bool) -> dict[str, Any]:
        """By name (endpoints/<n>), or by display name (created when there is none and `create`)."""
        if ENDPOINT_NAME.match(endpoint):
            found = self._read(self._endpoint_file(endpoint))
            if found is None:
                raise BackendError(f"Endpoint {endpoint} not found.")
            return found
        folder = self.root / "endpoints"
        for path in sorted(folder.glob("*.json")) if folder.exists() else []:
            data = json.loads(path.read_text())
            if data.get("display_name") == endpoint:
                return data
        if not create:
            raise BackendError(f"No endpoint named {endpoint!r}.")
        if not endpoint.strip():
            raise BackendError("An endpoint needs a display name.")
        data = {
            "name": f"endpoints/{self._next_id()}",
            "display_name": endpoint,
            "deployed_models": [],
            "traffic_split": {},
        }
        self._write(self._endpoint_file(data["name"]), data)
        return data

    def endpoint(self, endpoint: str) -> dict[str, Any]:
        """What the backend holds for an endpoint (for the console's pages and the tests)."""
        with self._locked():
            return self._endpoint(endpoint, create=False)

    def model(self, name: str) -> dict[str, Any]:
        with self._locked():
            found = self._read(self._model_file(name))
            if found is None:
                raise BackendError(f"Model {name} not found.")
            return found

    # -- registry -------------------------------------------------------------------------------------

    def register_model(
        self,
        *,
        display_name: str,
        artifact_uri: str,
        serving_image: str,
        aliases: Sequence[str] = (),
        parent_model: str = "",
        labels: Mapping[str, str] | None = None,
    ) -> RegisteredModel:
        if not artifact_uri:
            raise BackendError("A model version needs its artifact URI.")
        with self._locked():
            if parent_model:
                model = self._read(self._model_file(parent_model))
                if model is None:
                    raise BackendError(f"Parent model {parent_model} not found.")
            else:
                model = {
                    "name": f"models/{self._next_id()}",
                    "display_name": display_name[:128],
                    "labels": dict(labels or {}),
                    "versions": [],
                }
            version_id = str(len(model["versions"]) + 1)
            model["versions"].append(
                {
                    "version_id": version_id,
                    "artifact_uri": artifact_uri,
                    "serving_image": serving_image,
                    "aliases": [],
                }
            )
            self._move_aliases(model, version_id, add=aliases, remove=())
            self._write(self._model_file(model["name"]), model)
        return RegisteredModel(name=model["name"], version_id=version_id, aliases=tuple(aliases))

    @staticmethod
    def _move_aliases(
        model: dict[str, Any], version_id: str, *, add: Sequence[str], remove: Sequence[str]
    ) -> None:
        if not any(v["version_id"] == version_id for v in model["versions"]):
            raise BackendError(f"{model['name']} has no version {version_id}.")
        for version in model["versions"]:
            if version["version_id"] == version_id:
                kept = [a for a in version["aliases"] if a not in remove or a in add]
                version["aliases"] = [*kept, *(a for a in add if a not in kept)]
            else:  # an alias names one version: it moves
                version["aliases"] = [a for a in version["aliases"] if a not in add]

    def set_aliases(
        self, *, model: str, version_id: str, add: Sequence[str], remove: Sequence[str] = ()
    ) -> None:
        with self._locked():
            found = self._read(self._model_file(model))
            if found is None:
                raise BackendError(f"Model {model} not found.")
            self._move_aliases(found, version_id, add=add, remove=remove)
            self._write(self._model_file(model), found)

    # -- endpoints ------------------------------------------------------------------------------------

    def deploy(
        self,
        *,
        endpoint: str,
        model: str,
        version_id: str,
        traffic_percent: int,
        machine_type: str = "",
        accelerator_type: str = "",
        accelerator_count: int = 0,
    ) -> DeployedModel:
        with self._locked():
            registered = self._read(self._model_file(model))
            if registered is None or not any(v["version_id"] == version_id for v in registered["versions"]):
                raise BackendError(f"Model {model}@{version_id} not found.")
            current = self._endpoint(endpoint, create=True)
            split = {k: int(v) for k, v in current["traffic_split"].items()}
            for deployed in current["deployed_models"]:  # already there (a retried deploy): adopt it
                if deployed["model"] == model and deployed["version_id"] == version_id:
                    if split.get(deployed["id"], 0) != traffic_percent:
                        current["traffic_split"] = split_with(split, deployed["id"], traffic_percent)
                        self._write(self._endpoint_file(current["name"]), current)
                    return DeployedModel(current["name"], deployed["id"], dict(current["traffic_split"]))
            new_id = str(self._next_id())
            current["traffic_split"] = split_with(split, new_id, traffic_percent)  # refuses a lone canary
            current["deployed_models"].append(
                {
                    "id": new_id,
                    "model": model,
                    "version_id": version_id,
                    "machine_type": machine_type,
                    "accelerator_type": accelerator_type,
                    "accelerator_count": accelerator_count,
                }
            )
            self._write(self._endpoint_file(current["name"]), current)
        return DeployedModel(current["name"], new_id, dict(current["traffic_split"]))

    def set_traffic(self, *, endpoint: str, traffic_split: Mapping[str, int]) -> DeployedModel:
        with self._locked():
            current = self._endpoint(endpoint, create=False)
            deployed = {d["id"] for d in current["deployed_models"]}
            split = dict(traffic_split)
            unknown = sorted(set(split) - deployed)
            if unknown:
                raise BackendError(f"traffic_split names models not deployed on the endpoint: {unknown}.")
            if any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in split.values()):
                raise BackendError("traffic_split: whole percentages, 0 or more.")
            if split and sum(split.values()) != 100:
                raise BackendError(f"The sum of traffic_split values must be 100, not {sum(split.values())}.")
            current["traffic_split"] = split
            self._write(self._endpoint_file(current["name"]), current)
        return DeployedModel(current["name"], max(split, key=lambda k: split[k], default=""), split)

    def undeploy(self, *, endpoint: str, deployed_model_id: str) -> None:
        with self._locked():
            current = self._endpoint(endpoint, create=False)
            ids = [d["id"] for d in current["deployed_models"]]
            if deployed_model_id not in ids:
                return  # already gone (a retried undeploy)
            remaining = [i for i in ids if i != deployed_model_id]
            if remaining and current["traffic_split"].get(deployed_model_id, 0):
                raise BackendError(
                    f"Deployed model {deployed_model_id} still takes traffic: set the split first."
                )
            current["deployed_models"] = [
                d for d in current["deployed_models"] if d["id"] != deployed_model_id
            ]
            current["traffic_split"] = (
                {k: v for k, v in current["traffic_split"].items() if k != deployed_model_id}
                if remaining
                else {}
            )
            self._write(self._endpoint_file(current["name"]), current)
