"""
Tests for the Kubernetes API stand-in, in memory: HTTP through
C{treq.testing.StubTreq}, time through a C{Clock}.

Expected messages and shapes are the real apiserver's (see
C{bbreceiver/testing/_kubeapi.py} for where each comes from); the
conformance tests check the same server against real kubectl.
"""

from __future__ import annotations

import json
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from treq.testing import StubTreq
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import ResponseDone, ResponseFailed, ResponseNeverReceived

from bbreceiver.testing._kubepatch import (
    InvalidPatch,
    PatchConflict,
    escape_pointer_token,
    json_patch,
    merge_patch,
    parse_pointer,
)
from bbreceiver.testing._kubeselectors import (
    SelectorError,
    parse_field_selector,
    parse_label_selector,
)
from bbreceiver.testing.fakekube import (
    WAREHOUSES,
    FakeKube,
    KubeError,
    parse_yaml_objects,
)

KARGO = "/apis/kargo.akuity.io/v1alpha1"
WH = KARGO + "/namespaces/demo/warehouses"
ALL_WH = KARGO + "/warehouses"
CONFLICT = (
    'Operation cannot be fulfilled on warehouses.kargo.akuity.io "wh-1": the object '
    "has been modified; please apply your changes to the latest version and try again"
)


def warehouse(name: str, namespace: str = "demo", **metadata: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kargo.akuity.io/v1alpha1",
        "kind": "Warehouse",
        "metadata": dict({"name": name, "namespace": namespace}, **metadata),
        "spec": {
            "subscriptions": [{"git": {"repoURL": f"https://example.com/{name}"}}]
        },
    }


class Answer:
    """
    A complete HTTP response.
    """

    def __init__(self, code: int, headers: Any, body: bytes) -> None:
        self.code = code
        self.headers = headers
        self.body = body

    def header(self, name: str) -> str | None:
        values = self.headers.getRawHeaders(name)
        return values[0] if values else None

    def json(self) -> Any:
        return json.loads(self.body)


class Stream(Protocol):
    """
    Collects a streamed (watch) body.
    """

    def __init__(self) -> None:
        self.data = b""
        self.reason: Failure | None = None

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
        self.reason = reason

    @property
    def events(self) -> list[dict[str, Any]]:
        assert self.data == b"" or self.data.endswith(b"\n"), self.data
        return [json.loads(line) for line in self.data.splitlines()]

    @property
    def ended_cleanly(self) -> bool:
        return self.reason is not None and self.reason.check(ResponseDone) is not None


class FakeKubeTestCase(SynchronousTestCase):
    """
    A stand-in with a Clock, reached through StubTreq.
    """

    fake_options: dict[str, Any] = {}

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        self.fake = FakeKube(self.clock, rng=random.Random(7), **self.fake_options)
        self.stub: Any = StubTreq(self.fake.resource())

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> Answer:
        all_headers = {"Content-Type": content_type, **(headers or {})}
        data = (
            None
            if body is None
            else (body if isinstance(body, bytes) else json.dumps(body).encode())
        )
        d = self.stub.request(
            method, "http://kube.test" + path, data=data, headers=all_headers
        )
        self.stub.flush()
        response = self.successResultOf(d)
        content = self.successResultOf(self.stub.content(response))
        return Answer(response.code, response.headers, content)

    def get(self, path: str, **kwargs: Any) -> Answer:
        return self.call("GET", path, **kwargs)

    def pending(self, method: str, path: str, body: Any = None) -> Deferred[Any]:
        data = None if body is None else json.dumps(body).encode()
        d: Deferred[Any] = self.stub.request(
            method,
            "http://kube.test" + path,
            data=data,
            headers={"Content-Type": "application/json"},
        )
        self.stub.flush()
        return d

    def watch(self, path: str, headers: dict[str, str] | None = None) -> Stream:
        d = self.stub.get("http://kube.test" + path, unbuffered=True, headers=headers)
        self.stub.flush()
        response = self.successResultOf(d)
        self.assertEqual(response.code, 200)
        self.assertEqual(
            response.headers.getRawHeaders("content-type"), ["application/json"]
        )
        # (Agent hides Transfer-Encoding; the loopback tests see the raw bytes.)
        stream = Stream()
        response.deliverBody(stream)
        self.stub.flush()
        return stream

    def flush(self) -> None:
        self.stub.flush()

    def seed(self, *names: str, namespace: str = "demo") -> None:
        for name in names:
            self.fake.create(warehouse(name, namespace))

    def assertStatus(
        self, answer: Answer, code: int, reason: str, message: str | None = None
    ) -> dict[str, Any]:
        self.assertEqual(answer.code, code, answer.body)
        status = answer.json()
        self.assertEqual(
            (
                status["kind"],
                status["apiVersion"],
                status["status"],
                status["code"],
                status["reason"],
            ),
            ("Status", "v1", "Failure", code, reason),
        )
        if message is not None:
            self.assertEqual(status["message"], message)
        return status  # type: ignore[no-any-return]


class DiscoveryTests(FakeKubeTestCase):
    def test_version(self) -> None:
        answer = self.get("/version")
        self.assertEqual(answer.code, 200)
        info = answer.json()
        self.assertEqual(
            (info["major"], info["minor"], info["gitVersion"]), ("1", "36", "v1.36.0")
        )

    def test_core_group(self) -> None:
        self.assertEqual(self.get("/api").json()["versions"], ["v1"])
        resources = {r["name"]: r for r in self.get("/api/v1").json()["resources"]}
        self.assertEqual(resources["secrets"]["kind"], "Secret")
        self.assertTrue(resources["secrets"]["namespaced"])
        self.assertFalse(resources["namespaces"]["namespaced"])
        self.assertEqual(resources["namespaces"]["shortNames"], ["ns"])

    def test_groups(self) -> None:
        groups = self.get("/apis").json()
        self.assertEqual(groups["kind"], "APIGroupList")
        [kargo] = groups["groups"]
        self.assertEqual(
            kargo["preferredVersion"],
            {"groupVersion": "kargo.akuity.io/v1alpha1", "version": "v1alpha1"},
        )
        self.assertEqual(self.get("/apis/kargo.akuity.io").json()["kind"], "APIGroup")

    def test_kargo_resources(self) -> None:
        """
        Names, scopes and short names are Kargo's, so kubectl resolves
        C{promo} and C{warehouses.kargo.akuity.io} as against a cluster.
        """
        document = self.get(KARGO).json()
        self.assertEqual(
            (document["kind"], document["groupVersion"]),
            ("APIResourceList", "kargo.akuity.io/v1alpha1"),
        )
        resources = {r["name"]: r for r in document["resources"]}
        self.assertEqual(
            {
                k: resources["promotions"][k]
                for k in ("singularName", "namespaced", "kind", "shortNames")
            },
            {
                "singularName": "promotion",
                "namespaced": True,
                "kind": "Promotion",
                "shortNames": ["promo", "promos"],
            },
        )
        self.assertNotIn("shortNames", resources["warehouses"])
        self.assertIn("watch", resources["warehouses"]["verbs"])
        self.assertIn("patch", resources["warehouses"]["verbs"])
        self.assertFalse(resources["clusterconfigs"]["namespaced"])
        self.assertEqual(resources["projectconfigs"]["kind"], "ProjectConfig")
        self.assertEqual(
            resources["warehouses/status"]["verbs"], ["get", "patch", "update"]
        )

    def test_unknown_paths(self) -> None:
        self.assertStatus(
            self.get("/apis/example.com/v1/things"),
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
        self.assertStatus(self.get(KARGO + "/freights"), 404, "NotFound")
        answer = self.get("/nothing")
        self.assertEqual((answer.code, answer.body), (404, b"404 page not found\n"))

    def test_discovery_is_read_only(self) -> None:
        self.assertStatus(self.call("POST", "/apis", {}), 405, "MethodNotAllowed")


class CreateGetUpdateTests(FakeKubeTestCase):
    def test_create(self) -> None:
        """
        The server sets uid, creationTimestamp, generation and the next RV,
        and the namespace comes into existence.
        """
        before = self.fake.resource_version
        answer = self.call("POST", WH, warehouse("wh-1"))
        self.assertEqual(answer.code, 201)
        obj = answer.json()
        metadata = obj["metadata"]
        self.assertEqual(
            (obj["apiVersion"], obj["kind"]), ("kargo.akuity.io/v1alpha1", "Warehouse")
        )
        self.assertEqual(metadata["creationTimestamp"], "2023-11-14T22:13:20Z")
        self.assertEqual(metadata["generation"], 1)
        self.assertEqual(len(metadata["uid"]), 36)
        # One write for the implicit namespace, one for the object.
        self.assertEqual(metadata["resourceVersion"], str(before + 2))
        self.assertEqual(
            self.get("/api/v1/namespaces/demo").json()["status"], {"phase": "Active"}
        )
        self.assertEqual(self.get(WH + "/wh-1").json(), obj)

    def test_create_existing(self) -> None:
        self.seed("wh-1")
        status = self.assertStatus(
            self.call("POST", WH, warehouse("wh-1")),
            409,
            "AlreadyExists",
            'warehouses.kargo.akuity.io "wh-1" already exists',
        )
        self.assertEqual(
            status["details"],
            {"name": "wh-1", "group": "kargo.akuity.io", "kind": "warehouses"},
        )

    def test_create_generate_name(self) -> None:
        obj = warehouse("")
        obj["metadata"] = {"generateName": "wh-"}
        name = self.call("POST", WH, obj).json()["metadata"]["name"]
        self.assertRegex(name, r"^wh-[a-z0-9]{5}$")

    def test_create_namespace_mismatch(self) -> None:
        self.assertStatus(
            self.call("POST", WH, warehouse("wh-1", namespace="other")),
            400,
            "BadRequest",
            "the namespace of the provided object does not match the namespace sent "
            "on the request",
        )

    def test_create_drops_status(self) -> None:
        """
        Kargo's CRDs have a status subresource: status is not writable
        through the main resource.
        """
        obj = dict(warehouse("wh-1"), status={"observedGeneration": 3})
        self.assertNotIn("status", self.call("POST", WH, obj).json())

    def test_get_missing(self) -> None:
        status = self.assertStatus(
            self.get(WH + "/nope"),
            404,
            "NotFound",
            'warehouses.kargo.akuity.io "nope" not found',
        )
        self.assertEqual(
            status["details"],
            {"name": "nope", "group": "kargo.akuity.io", "kind": "warehouses"},
        )
        self.assertEqual(
            self.get("/api/v1/namespaces/demo/secrets/s").json()["details"],
            {"name": "s", "kind": "secrets"},
        )

    def test_update_needs_resource_version(self) -> None:
        self.seed("wh-1")
        status = self.assertStatus(
            self.call("PUT", WH + "/wh-1", warehouse("wh-1")),
            422,
            "Invalid",
            'warehouses.kargo.akuity.io "wh-1" is invalid: metadata.resourceVersion: '
            "Invalid value: 0x0: must be specified for an update",
        )
        self.assertEqual(
            status["details"]["causes"][0]["field"], "metadata.resourceVersion"
        )

    def test_update_stale(self) -> None:
        self.seed("wh-1")
        stale = self.fake.get("warehouses", "demo", "wh-1")
        self.fake.patch("warehouses", "demo", "wh-1", {"spec": {"interval": "5m"}})
        self.assertStatus(
            self.call("PUT", WH + "/wh-1", stale),
            409,
            "Conflict",
            CONFLICT,
        )

    def test_update_generation(self) -> None:
        """
        Metadata changes keep the generation; spec changes bump it.
        """
        self.seed("wh-1")
        obj = self.fake.get("warehouses", "demo", "wh-1")
        obj["metadata"]["labels"] = {"a": "b"}
        obj = self.call("PUT", WH + "/wh-1", obj).json()
        self.assertEqual(obj["metadata"]["generation"], 1)
        obj["spec"]["interval"] = "1m"
        obj = self.call("PUT", WH + "/wh-1", obj).json()
        self.assertEqual(obj["metadata"]["generation"], 2)

    def test_update_keeps_server_fields(self) -> None:
        self.seed("wh-1")
        obj = self.fake.get("warehouses", "demo", "wh-1")
        original = dict(obj["metadata"])
        obj["metadata"].update(
            uid="x", creationTimestamp="2000-01-01T00:00:00Z", generation=9
        )
        obj["status"] = {"x": 1}
        updated = self.call("PUT", WH + "/wh-1", obj).json()
        for k in ("uid", "creationTimestamp", "generation"):
            self.assertEqual(updated["metadata"][k], original[k])
        self.assertNotIn("status", updated)

    def test_update_name_mismatch(self) -> None:
        self.seed("wh-1")
        obj = self.fake.get("warehouses", "demo", "wh-1")
        obj["metadata"]["name"] = "wh-2"
        self.assertStatus(
            self.call("PUT", WH + "/wh-1", obj),
            400,
            "BadRequest",
            "the name of the object (wh-2) does not match the name on the URL (wh-1)",
        )

    def test_status_subresource(self) -> None:
        """
        C{/status} writes only the status, and does not bump generation.
        """
        self.seed("wh-1")
        patched = self.call(
            "PATCH",
            WH + "/wh-1/status",
            {
                "status": {"observedGeneration": 1},
                "spec": {"x": 1},
                "metadata": {"labels": {"a": "b"}},
            },
            content_type="application/merge-patch+json",
        ).json()
        self.assertEqual(patched["status"], {"observedGeneration": 1})
        self.assertNotIn("x", patched["spec"])
        self.assertNotIn("labels", patched["metadata"])
        self.assertEqual(patched["metadata"]["generation"], 1)
        self.assertEqual(
            self.get(WH + "/wh-1/status").json()["status"], {"observedGeneration": 1}
        )

    def test_cluster_scoped(self) -> None:
        path = KARGO + "/clusterconfigs"
        created = self.call(
            "POST",
            path,
            {
                "apiVersion": "kargo.akuity.io/v1alpha1",
                "kind": "ClusterConfig",
                "metadata": {"name": "cluster"},
            },
        ).json()
        self.assertNotIn("namespace", created["metadata"])
        self.assertEqual(
            self.get(path + "/cluster").json()["metadata"]["name"], "cluster"
        )
        self.assertEqual(
            [i["metadata"]["name"] for i in self.get(path).json()["items"]], ["cluster"]
        )

    def test_secret_string_data(self) -> None:
        """
        A Secret's stringData is folded into data, as decoding does.
        """
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "s", "namespace": "demo"},
            "stringData": {"secret": "hunter2"},
        }
        created = self.call("POST", "/api/v1/namespaces/demo/secrets", secret).json()
        self.assertEqual(created["data"], {"secret": "aHVudGVyMg=="})
        self.assertEqual(created["type"], "Opaque")
        self.assertNotIn("stringData", created)
        self.assertNotIn("generation", created["metadata"])

    def test_dry_run(self) -> None:
        before = self.fake.resource_version
        self.assertEqual(
            self.call("POST", WH + "?dryRun=All", warehouse("wh-1")).code, 201
        )
        self.assertEqual(self.fake.resource_version, before)
        self.assertEqual(self.get(WH + "/wh-1").code, 404)

    def test_yaml_body(self) -> None:
        body = (
            b"apiVersion: kargo.akuity.io/v1alpha1\nkind: Warehouse\n"
            b"metadata: {name: y}\n"
        )
        self.assertEqual(
            self.call("POST", WH, body, content_type="application/yaml").code, 201
        )

    def test_bad_json(self) -> None:
        self.assertStatus(self.call("POST", WH, b"{nope"), 400, "BadRequest")


class DeleteTests(FakeKubeTestCase):
    def test_delete(self) -> None:
        self.seed("wh-1")
        answer = self.call("DELETE", WH + "/wh-1")
        self.assertEqual(answer.code, 200)
        self.assertEqual(
            answer.json()["metadata"]["resourceVersion"],
            str(self.fake.resource_version),
        )
        self.assertEqual(self.get(WH + "/wh-1").code, 404)
        self.assertStatus(self.call("DELETE", WH + "/wh-1"), 404, "NotFound")

    def test_finalizers(self) -> None:
        """
        With finalizers an object is only marked; it goes when they do.
        """
        self.fake.create(warehouse("wh-1", finalizers=["kargo.akuity.io/finalizer"]))
        marked = self.call("DELETE", WH + "/wh-1").json()
        self.assertIn("deletionTimestamp", marked["metadata"])
        self.assertEqual(marked["metadata"]["generation"], 2)
        self.assertEqual(self.get(WH + "/wh-1").code, 200)
        self.call(
            "PATCH",
            WH + "/wh-1",
            {"metadata": {"finalizers": None}},
            content_type="application/merge-patch+json",
        )
        self.assertEqual(self.get(WH + "/wh-1").code, 404)

    def test_precondition(self) -> None:
        self.seed("wh-1")
        status = self.assertStatus(
            self.call(
                "DELETE", WH + "/wh-1", {"preconditions": {"resourceVersion": "1"}}
            ),
            409,
            "Conflict",
        )
        self.assertIn(
            "Precondition failed: ResourceVersion in precondition: 1", status["message"]
        )

    def test_delete_collection(self) -> None:
        self.seed("a", "b")
        self.fake.create(warehouse("c", labels={"keep": "yes"}))
        answer = self.call("DELETE", WH + "?labelSelector=!keep")
        self.assertEqual(
            [i["metadata"]["name"] for i in answer.json()["items"]], ["a", "b"]
        )
        self.assertEqual(
            [o["metadata"]["name"] for o in self.fake.list_objects("warehouses")], ["c"]
        )


class PatchTests(FakeKubeTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.seed("wh-1")

    def merge(
        self,
        patch: Any,
        path: str = WH + "/wh-1",
        content_type: str = "application/merge-patch+json",
    ) -> Answer:
        return self.call("PATCH", path, patch, content_type=content_type)

    def test_refresh_annotation(self) -> None:
        """
        The daemon's refresh: a merge patch of one annotation; the response
        is the whole object at its new RV.
        """
        before = self.fake.resource_version
        answer = self.merge(
            {
                "metadata": {
                    "annotations": {
                        "kargo.akuity.io/refresh": "2026-01-01T00:00:00.000001Z"
                    }
                }
            }
        )
        self.assertEqual(answer.code, 200)
        obj = answer.json()
        self.assertEqual(
            obj["metadata"]["annotations"],
            {"kargo.akuity.io/refresh": "2026-01-01T00:00:00.000001Z"},
        )
        self.assertEqual(obj["metadata"]["resourceVersion"], str(before + 1))
        self.assertEqual(obj["metadata"]["generation"], 1)
        self.assertEqual(obj["spec"], warehouse("wh-1")["spec"])

    def test_noop_patch(self) -> None:
        """
        A patch that changes nothing writes nothing: same RV, no event.
        """
        patch = {"metadata": {"annotations": {"kargo.akuity.io/refresh": "t1"}}}
        first = self.merge(patch).json()
        stream = self.watch(
            ALL_WH
            + "?watch=true&resourceVersion="
            + first["metadata"]["resourceVersion"]
        )
        second = self.merge(patch).json()
        self.assertEqual(second, first)
        self.assertEqual(
            self.fake.resource_version, int(first["metadata"]["resourceVersion"])
        )
        self.flush()
        self.assertEqual(stream.events, [])

    def test_null_deletes(self) -> None:
        self.merge({"metadata": {"annotations": {"a": "1", "b": "2"}}})
        obj = self.merge({"metadata": {"annotations": {"a": None}}}).json()
        self.assertEqual(obj["metadata"]["annotations"], {"b": "2"})

    def test_resource_version_precondition(self) -> None:
        current = self.fake.get("warehouses", "demo", "wh-1")["metadata"][
            "resourceVersion"
        ]
        status = self.assertStatus(
            self.merge(
                {"metadata": {"resourceVersion": "1", "annotations": {"a": "1"}}}
            ),
            409,
            "Conflict",
            CONFLICT,
        )
        self.assertEqual(
            status["details"],
            {"name": "wh-1", "group": "kargo.akuity.io", "kind": "warehouses"},
        )
        answer = self.merge(
            {"metadata": {"resourceVersion": current, "annotations": {"a": "1"}}}
        )
        self.assertEqual(answer.code, 200)

    def test_json_patch(self) -> None:
        answer = self.call(
            "PATCH",
            WH + "/wh-1",
            [
                {"op": "add", "path": "/metadata/annotations", "value": {}},
                {
                    "op": "add",
                    "path": "/metadata/annotations/kargo.akuity.io~1refresh",
                    "value": "t",
                },
                {
                    "op": "replace",
                    "path": "/spec/subscriptions/0/git/repoURL",
                    "value": "https://x/y",
                },
                {"op": "test", "path": "/metadata/name", "value": "wh-1"},
            ],
            content_type="application/json-patch+json",
        )
        self.assertEqual(answer.code, 200)
        obj = answer.json()
        self.assertEqual(
            obj["metadata"]["annotations"], {"kargo.akuity.io/refresh": "t"}
        )
        self.assertEqual(
            obj["spec"]["subscriptions"][0]["git"]["repoURL"], "https://x/y"
        )
        self.assertEqual(obj["metadata"]["generation"], 2)

    def test_json_patch_does_not_apply(self) -> None:
        """
        C{add} below a missing map fails; the server reports only a generic
        422, and nothing is written.
        """
        before = self.fake.resource_version
        self.assertStatus(
            self.call(
                "PATCH",
                WH + "/wh-1",
                [{"op": "add", "path": "/metadata/annotations/a", "value": "1"}],
                content_type="application/json-patch+json",
            ),
            422,
            "Invalid",
            "the server rejected our request due to an error in our request",
        )
        self.assertEqual(self.fake.resource_version, before)

    def test_json_patch_malformed(self) -> None:
        self.assertStatus(
            self.call(
                "PATCH",
                WH + "/wh-1",
                {"op": "add"},
                content_type="application/json-patch+json",
            ),
            400,
            "BadRequest",
        )

    def test_strategic_merge_refused(self) -> None:
        self.assertStatus(
            self.merge({}, content_type="application/strategic-merge-patch+json"),
            415,
            "UnsupportedMediaType",
            "the body of the request was in an unknown format - accepted media types "
            "include: application/json-patch+json, application/merge-patch+json, "
            "application/apply-patch+yaml",
        )
        self.assertStatus(
            self.merge({}, content_type="text/plain"), 415, "UnsupportedMediaType"
        )

    def test_strategic_merge_on_secret(self) -> None:
        self.fake.create(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "s", "namespace": "demo"},
            }
        )
        answer = self.call(
            "PATCH",
            "/api/v1/namespaces/demo/secrets/s",
            {"data": {"k": "dg=="}},
            content_type="application/strategic-merge-patch+json",
        )
        self.assertEqual(answer.json()["data"], {"k": "dg=="})

    def test_missing(self) -> None:
        self.assertStatus(
            self.merge({}, path=WH + "/nope"),
            404,
            "NotFound",
            'warehouses.kargo.akuity.io "nope" not found',
        )

    def test_field_manager(self) -> None:
        """
        C{fieldManager} is recorded in managedFields as the fields that
        manager changed.
        """
        obj = self.merge(
            {"metadata": {"annotations": {"kargo.akuity.io/refresh": "t"}}},
            path=WH + "/wh-1?fieldManager=bbreceiver",
        ).json()
        [entry] = obj["metadata"]["managedFields"]
        self.assertEqual(
            {k: entry[k] for k in ("manager", "operation", "apiVersion", "fieldsType")},
            {
                "manager": "bbreceiver",
                "operation": "Update",
                "apiVersion": "kargo.akuity.io/v1alpha1",
                "fieldsType": "FieldsV1",
            },
        )
        self.assertEqual(
            entry["fieldsV1"],
            {"f:metadata": {"f:annotations": {"f:kargo.akuity.io/refresh": {}}}},
        )
        self.assertEqual(self.fake.requests[-1].param("fieldManager"), "bbreceiver")

    def test_dry_run(self) -> None:
        before = self.fake.resource_version
        obj = self.merge(
            {"metadata": {"labels": {"a": "b"}}}, path=WH + "/wh-1?dryRun=All"
        ).json()
        self.assertEqual(obj["metadata"]["labels"], {"a": "b"})
        self.assertEqual(self.fake.resource_version, before)
        self.assertNotIn(
            "labels", self.fake.get("warehouses", "demo", "wh-1")["metadata"]
        )


class ListTests(FakeKubeTestCase):
    def test_shape(self) -> None:
        self.seed("b", "a")
        self.seed("c", namespace="other")
        answer = self.get(ALL_WH)
        document = answer.json()
        self.assertEqual(
            (document["kind"], document["apiVersion"]),
            ("WarehouseList", "kargo.akuity.io/v1alpha1"),
        )
        self.assertEqual(
            document["metadata"], {"resourceVersion": str(self.fake.resource_version)}
        )
        self.assertEqual(
            [
                (i["metadata"]["namespace"], i["metadata"]["name"])
                for i in document["items"]
            ],
            [("demo", "a"), ("demo", "b"), ("other", "c")],
        )
        self.assertEqual(document["items"][0]["kind"], "Warehouse")
        self.assertEqual(
            [i["metadata"]["name"] for i in self.get(WH).json()["items"]], ["a", "b"]
        )

    def test_builtin_items_lack_kind(self) -> None:
        self.fake.create(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "s", "namespace": "demo"},
            }
        )
        document = self.get("/api/v1/secrets").json()
        self.assertEqual(document["kind"], "SecretList")
        self.assertNotIn("kind", document["items"][0])

    def test_label_selector(self) -> None:
        self.fake.create(warehouse("a", labels={"tier": "x", "team": "t"}))
        self.fake.create(warehouse("b", labels={"tier": "y"}))
        self.seed("c")
        for selector, names in [
            ("tier=x", ["a"]),
            ("tier==x", ["a"]),
            ("tier!=x", ["b", "c"]),
            ("tier", ["a", "b"]),
            ("!tier", ["c"]),
            ("tier in (x, y),team", ["a"]),
            ("tier notin (x)", ["b", "c"]),
        ]:
            items = self.get(
                ALL_WH + "?labelSelector=" + selector.replace(" ", "%20")
            ).json()["items"]
            self.assertEqual([i["metadata"]["name"] for i in items], names, selector)
        self.assertStatus(self.get(ALL_WH + "?labelSelector=a%20b"), 400, "BadRequest")

    def test_field_selector(self) -> None:
        self.seed("a", "b")
        self.seed("a", namespace="other")
        items = self.get(
            ALL_WH + "?fieldSelector=metadata.name=a,metadata.namespace!=demo"
        ).json()["items"]
        self.assertEqual([i["metadata"]["namespace"] for i in items], ["other"])
        self.assertStatus(
            self.get(ALL_WH + "?fieldSelector=spec.x=1"),
            400,
            "BadRequest",
            "field label not supported: spec.x",
        )

    def test_pages_share_a_snapshot(self) -> None:
        """
        Every page carries the first page's RV and shows the state at it,
        whatever is written between pages.
        """
        self.seed("a", "b", "c")
        first = self.get(WH + "?limit=2").json()
        rv = first["metadata"]["resourceVersion"]
        self.assertEqual([i["metadata"]["name"] for i in first["items"]], ["a", "b"])
        self.assertEqual(first["metadata"]["remainingItemCount"], 1)
        self.fake.patch(
            "warehouses", "demo", "c", {"metadata": {"labels": {"new": "yes"}}}
        )
        self.seed("d")
        second = self.get(
            WH + "?limit=2&continue=" + first["metadata"]["continue"]
        ).json()
        self.assertEqual(second["metadata"], {"resourceVersion": rv})
        [c] = second["items"]
        self.assertEqual(c["metadata"]["name"], "c")
        self.assertNotIn("labels", c["metadata"])
        self.assertEqual(len(self.get(WH).json()["items"]), 4)

    def test_expired_continue(self) -> None:
        """
        After compaction a continue token gets 410 Expired, with a token to
        continue inconsistently (etcd's longer message).
        """
        self.seed("a", "b", "c")
        token = self.get(WH + "?limit=1").json()["metadata"]["continue"]
        self.fake.patch("warehouses", "demo", "c", {"metadata": {"labels": {"x": "y"}}})
        self.fake.compact()
        status = self.assertStatus(
            self.get(WH + "?limit=1&continue=" + token), 410, "Expired"
        )
        self.assertTrue(
            status["message"].startswith("The provided continue parameter is too old")
        )
        rest = self.get(WH + "?continue=" + status["metadata"]["continue"]).json()
        self.assertEqual([i["metadata"]["name"] for i in rest["items"]], ["b", "c"])
        self.assertEqual(rest["items"][1]["metadata"]["labels"], {"x": "y"})
        self.assertEqual(
            rest["metadata"]["resourceVersion"], str(self.fake.resource_version)
        )

    def test_bad_continue(self) -> None:
        self.assertStatus(self.get(WH + "?continue=garbage!"), 400, "BadRequest")
        self.seed("a", "b")
        token = self.get(WH + "?limit=1").json()["metadata"]["continue"]
        self.assertStatus(
            self.get(WH + "?resourceVersion=5&continue=" + token),
            400,
            "BadRequest",
            "specifying resource version is not allowed when using continue",
        )
        self.assertEqual(
            self.get(WH + "?resourceVersion=0&continue=" + token).code, 200
        )

    def test_option_validation(self) -> None:
        status = self.assertStatus(
            self.get(WH + "?resourceVersionMatch=NotOlderThan"),
            422,
            "Invalid",
            'ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Forbidden: '
            "resourceVersionMatch is forbidden unless resourceVersion is provided",
        )
        self.assertEqual(
            status["details"],
            {
                "group": "meta.k8s.io",
                "kind": "ListOptions",
                "causes": [
                    {
                        "reason": "FieldValueForbidden",
                        "message": "Forbidden: resourceVersionMatch is forbidden "
                        "unless resourceVersion is provided",
                        "field": "resourceVersionMatch",
                    }
                ],
            },
        )
        for query in [
            "resourceVersion=0&resourceVersionMatch=Exact",
            "resourceVersion=5&resourceVersionMatch=Sometimes",
            "sendInitialEvents=true",
            "watch=true&resourceVersion=5&resourceVersionMatch=NotOlderThan",
            "watch=true&sendInitialEvents=true",
        ]:
            self.assertEqual(self.get(WH + "?" + query).code, 422, query)
        self.assertStatus(self.get(WH + "?limit=x"), 400, "BadRequest")
        self.assertStatus(self.get(WH + "?resourceVersion=abc"), 400, "BadRequest")

    def test_exact(self) -> None:
        """
        C{Exact}, and a plain RV with C{limit} (the legacy rule), read the
        past; without a limit an RV means "not older than".
        """
        self.seed("a")
        rv = str(self.fake.resource_version)
        self.fake.patch("warehouses", "demo", "a", {"metadata": {"labels": {"x": "y"}}})
        self.seed("b")
        for query in [
            "resourceVersionMatch=Exact&resourceVersion=" + rv,
            "limit=10&resourceVersion=" + rv,
        ]:
            document = self.get(WH + "?" + query).json()
            self.assertEqual(document["metadata"]["resourceVersion"], rv)
            [a] = document["items"]
            self.assertNotIn("labels", a["metadata"])
        document = self.get(WH + "?resourceVersion=" + rv).json()
        self.assertEqual(
            document["metadata"]["resourceVersion"], str(self.fake.resource_version)
        )
        self.assertEqual(len(document["items"]), 2)

    def test_exact_compacted(self) -> None:
        self.seed("a")
        rv = str(self.fake.resource_version)
        self.seed("b")
        self.fake.compact()
        self.assertStatus(
            self.get(WH + "?resourceVersionMatch=Exact&resourceVersion=" + rv),
            410,
            "Expired",
            "The resourceVersion for the provided list is too old.",
        )

    def test_too_large_resource_version(self) -> None:
        """
        An RV the server has not reached is waited for (3 s), then refused
        with the cache's 504.
        """
        wanted = self.fake.resource_version + 2
        d = self.pending(
            "GET", WH + f"?resourceVersion={wanted}&resourceVersionMatch=NotOlderThan"
        )
        self.assertNoResult(d)
        self.clock.advance(2.9)
        self.flush()
        self.assertNoResult(d)
        self.clock.advance(0.1)
        self.flush()
        response = self.successResultOf(d)
        status = json.loads(self.successResultOf(self.stub.content(response)))
        self.assertEqual(status["code"], 504)
        self.assertEqual(status["reason"], "Timeout")
        self.assertEqual(
            status["message"],
            f"Timeout: Too large resource version: {wanted}, current: {wanted - 2}",
        )
        self.assertEqual(
            status["details"]["causes"][0]["reason"], "ResourceVersionTooLarge"
        )

    def test_too_large_then_reached(self) -> None:
        wanted = self.fake.resource_version + 2
        d = self.pending("GET", WH + f"?resourceVersion={wanted}")
        self.seed("a", "b")
        self.flush()
        response = self.successResultOf(d)
        self.assertEqual(response.code, 200)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class WatchTests(FakeKubeTestCase):
    def test_watch_bool(self) -> None:
        """
        C{watch} is parsed like the apiserver's bool: present and not
        C{0}/C{false} means watch.
        """
        self.seed("a")
        for query in ["watch=true", "watch=1", "watch", "watch=True"]:
            stream = self.watch(WH + "?" + query)
            self.assertEqual([e["type"] for e in stream.events], ["ADDED"], query)
        for query in ["watch=false", "watch=0", "watch=FALSE"]:
            self.assertEqual(self.get(WH + "?" + query).json()["kind"], "WarehouseList")

    def test_from_resource_version(self) -> None:
        """
        From RV N: the changes after N, no synthetic events, then live ones.
        """
        self.seed("a")
        rv = self.fake.resource_version
        self.fake.patch("warehouses", "demo", "a", {"metadata": {"labels": {"x": "1"}}})
        self.seed("b")
        stream = self.watch(WH + f"?watch=true&resourceVersion={rv}")
        self.fake.delete("warehouses", "demo", "a")
        self.flush()
        self.assertEqual(
            [
                (
                    e["type"],
                    e["object"]["metadata"]["name"],
                    e["object"]["metadata"]["resourceVersion"],
                )
                for e in stream.events
            ],
            [
                ("MODIFIED", "a", str(rv + 1)),
                ("ADDED", "b", str(rv + 2)),
                ("DELETED", "a", str(rv + 3)),
            ],
        )
        self.assertEqual(stream.events[2]["object"]["metadata"]["labels"], {"x": "1"})

    def test_initial_state(self) -> None:
        """
        From RV unset or 0: the current state as ADDED, then changes;
        without allowWatchBookmarks no bookmark at all.
        """
        self.seed("a", "b")
        for rv in ["", "&resourceVersion=0"]:
            stream = self.watch(WH + "?watch=true" + rv)
            self.assertEqual(
                [(e["type"], e["object"]["metadata"]["name"]) for e in stream.events],
                [("ADDED", "a"), ("ADDED", "b")],
            )
        self.fake.patch("warehouses", "demo", "a", {"spec": {"x": 1}})
        self.flush()
        self.assertEqual(stream.events[-1]["type"], "MODIFIED")

    def test_watch_list(self) -> None:
        """
        C{sendInitialEvents=true}: ADDEDs, then the bookmark annotated
        C{k8s.io/initial-events-end} at the current RV (kubectl 1.37's
        C{wait} needs it).
        """
        self.seed("a")
        for query in [
            "watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true",
            "watch=true&allowWatchBookmarks=true",
        ]:
            stream = self.watch(WH + "?" + query)
            added, bookmark = stream.events
            self.assertEqual(added["type"], "ADDED")
            self.assertEqual(
                bookmark,
                {
                    "type": "BOOKMARK",
                    "object": {
                        "kind": "Warehouse",
                        "apiVersion": "kargo.akuity.io/v1alpha1",
                        "metadata": {
                            "resourceVersion": str(self.fake.resource_version),
                            "annotations": {"k8s.io/initial-events-end": "true"},
                        },
                    },
                },
            )

    def test_too_old(self) -> None:
        """
        A compacted RV gets an ERROR event with a 410 Status inside a 200
        stream, which then ends.
        """
        self.seed("a")
        old = self.fake.resource_version
        self.seed("b")
        current = self.fake.compact()
        stream = self.watch(WH + f"?watch=true&resourceVersion={old}")
        self.assertEqual(
            stream.events,
            [
                {
                    "type": "ERROR",
                    "object": {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "metadata": {},
                        "status": "Failure",
                        "message": f"too old resource version: {old} ({current})",
                        "reason": "Expired",
                        "code": 410,
                    },
                }
            ],
        )
        self.assertTrue(stream.ended_cleanly)
        self.assertEqual(self.fake.watches, [])
        self.assertEqual(
            self.watch(WH + f"?watch=true&resourceVersion={current}").events, []
        )

    def test_history_capacity(self) -> None:
        fake = FakeKube(self.clock, history_capacity=2)
        stub: Any = StubTreq(fake.resource())
        for name in "abc":
            fake.create(warehouse(name, "x" if name == "a" else "demo"))
        # a's namespace, a, the demo namespace, b, c: only b and c are kept.
        self.assertEqual(fake.oldest_resource_version, fake.resource_version - 2)
        d = stub.get(
            f"http://k{WH}?watch=true"
            f"&resourceVersion={fake.oldest_resource_version - 1}"
        )
        stub.flush()
        self.assertEqual(
            json.loads(self.successResultOf(stub.content(self.successResultOf(d))))[
                "object"
            ]["code"],
            410,
        )

    def test_timeout(self) -> None:
        stream = self.watch(WH + "?watch=true&resourceVersion=0&timeoutSeconds=30")
        self.clock.advance(29.9)
        self.flush()
        self.assertIsNone(stream.reason)
        self.clock.advance(0.1)
        self.flush()
        self.assertTrue(stream.ended_cleanly)
        self.assertEqual(self.fake.watches, [])

    def test_default_timeout(self) -> None:
        """
        Without timeoutSeconds a watch lives 30-60 minutes, like the
        apiserver's --min-request-timeout default.
        """
        stream = self.watch(ALL_WH + "?watch=true&resourceVersion=0")
        self.clock.advance(1799)
        self.flush()
        self.assertIsNone(stream.reason)
        self.clock.advance(1801)
        self.flush()
        self.assertTrue(stream.ended_cleanly)

    def test_bookmarks(self) -> None:
        """
        Bookmarks every interval and once 2 s before the deadline.
        """
        start = self.clock.seconds()
        stream = self.watch(
            WH
            + f"?watch=true&resourceVersion={self.fake.resource_version}"
            + "&allowWatchBookmarks=true&timeoutSeconds=150"
        )
        times: list[float] = []
        for _ in range(150):
            self.clock.advance(1)
            self.flush()
            if len(stream.events) > len(times):
                times.append(self.clock.seconds() - start)
        self.assertEqual(times, [60, 120, 148])
        self.assertEqual(
            stream.events[0]["object"],
            {
                "kind": "Warehouse",
                "apiVersion": "kargo.akuity.io/v1alpha1",
                "metadata": {"resourceVersion": str(self.fake.resource_version)},
            },
        )
        self.assertTrue(stream.ended_cleanly)

    def test_bookmark_interval_configurable(self) -> None:
        self.fake.bookmark_interval = 5
        stream = self.watch(
            WH
            + f"?watch=true&resourceVersion={self.fake.resource_version}"
            + "&allowWatchBookmarks=true&timeoutSeconds=60"
        )
        self.clock.advance(5)
        self.flush()
        self.assertEqual([e["type"] for e in stream.events], ["BOOKMARK"])
        self.seed("a")
        self.clock.advance(5)
        self.flush()
        self.assertEqual(
            stream.events[-1]["object"]["metadata"]["resourceVersion"],
            str(self.fake.resource_version),
        )

    def test_selector_transitions(self) -> None:
        """
        An object entering the selection is ADDED; one leaving it is DELETED
        with its previous content at the new RV.
        """
        self.seed("a")
        stream = self.watch(
            WH
            + f"?watch=true&resourceVersion={self.fake.resource_version}"
            + "&labelSelector=pick%3Dyes"
        )
        self.fake.patch(
            "warehouses", "demo", "a", {"metadata": {"labels": {"pick": "yes"}}}
        )
        self.fake.patch("warehouses", "demo", "a", {"spec": {"x": 1}})
        self.fake.patch(
            "warehouses", "demo", "a", {"metadata": {"labels": {"pick": "no"}}}
        )
        self.fake.patch("warehouses", "demo", "a", {"spec": {"x": 2}})
        self.flush()
        events = stream.events
        self.assertEqual([e["type"] for e in events], ["ADDED", "MODIFIED", "DELETED"])
        self.assertEqual(events[2]["object"]["metadata"]["labels"], {"pick": "yes"})
        self.assertEqual(
            int(events[2]["object"]["metadata"]["resourceVersion"]),
            self.fake.resource_version - 1,
        )

    def test_namespace_and_name(self) -> None:
        stream = self.watch(
            WH + f"?watch=true&resourceVersion={self.fake.resource_version}"
        )
        single = self.watch(
            WH + f"/b?watch=true&resourceVersion={self.fake.resource_version}"
        )
        self.seed("a")
        self.seed("a", namespace="other")
        self.seed("b")
        self.flush()
        self.assertEqual(
            [e["object"]["metadata"]["name"] for e in stream.events], ["a", "b"]
        )
        self.assertEqual(
            [e["object"]["metadata"]["name"] for e in single.events], ["b"]
        )

    def test_other_resources_ignored(self) -> None:
        stream = self.watch(
            ALL_WH + f"?watch=true&resourceVersion={self.fake.resource_version}"
        )
        self.fake.create(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "s", "namespace": "new"},
            }
        )
        self.flush()
        self.assertEqual(stream.events, [])

    def test_one_event_per_line(self) -> None:
        stream = self.watch(
            WH + f"?watch=true&resourceVersion={self.fake.resource_version}"
        )
        self.seed("a")
        self.flush()
        self.assertEqual(stream.data.count(b"\n"), 1)
        self.seed("b")
        self.flush()
        self.assertEqual(stream.data.count(b"\n"), 2)

    def test_future_resource_version(self) -> None:
        """
        A watch from an RV the server has not reached (an apiserver that
        restarted with lower RVs) gets nothing until writes pass it.
        """
        self.seed("x")
        wanted = self.fake.resource_version + 2
        stream = self.watch(WH + f"?watch=true&resourceVersion={wanted}")
        self.seed("a", "b")
        self.flush()
        self.assertEqual(stream.events, [])
        self.seed("c")
        self.flush()
        self.assertEqual(
            [e["object"]["metadata"]["name"] for e in stream.events], ["c"]
        )

    def test_watch_list_too_large(self) -> None:
        wanted = self.fake.resource_version + 1
        d = self.stub.get(
            "http://k"
            + WH
            + "?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan"
            + f"&resourceVersion={wanted}"
        )
        self.flush()
        self.assertNoResult(d)
        self.clock.advance(3)
        self.flush()
        response = self.successResultOf(d)
        self.assertEqual(response.code, 200)
        event = json.loads(self.successResultOf(self.stub.content(response)))
        self.assertEqual((event["type"], event["object"]["code"]), ("ERROR", 504))

    def test_gate_off(self) -> None:
        """
        With the WatchList gate off, watch-list requests get 422 (clients
        fall back to list + watch) and legacy watches no bookmark.
        """
        self.fake.watch_list = False
        self.seed("a")
        self.assertStatus(
            self.get(
                WH
                + "?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan"
            ),
            422,
            "Invalid",
            'ListOptions.meta.k8s.io "" is invalid: sendInitialEvents: Forbidden: '
            "sendInitialEvents "
            "is forbidden for watch unless the WatchList feature gate is enabled",
        )
        stream = self.watch(WH + "?watch=true&allowWatchBookmarks=true")
        self.assertEqual([e["type"] for e in stream.events], ["ADDED"])

    def test_python_writes_are_events(self) -> None:
        stream = self.watch(
            ALL_WH + f"?watch=true&resourceVersion={self.fake.resource_version}"
        )
        self.fake.create(warehouse("a"))
        self.fake.update(dict(warehouse("a"), spec={"x": 1}))
        self.fake.patch(
            "warehouses",
            "demo",
            "a",
            [{"op": "replace", "path": "/spec/x", "value": 2}],
            "json",
        )
        self.fake.delete("Warehouse", "demo", "a")
        self.flush()
        self.assertEqual(
            [e["type"] for e in stream.events],
            ["ADDED", "MODIFIED", "MODIFIED", "DELETED"],
        )
        self.assertEqual(stream.events[-1]["object"]["spec"], {"x": 2})


class HookTests(FakeKubeTestCase):
    def open(self) -> Stream:
        return self.watch(
            WH
            + f"?watch=true&resourceVersion={self.fake.resource_version}"
            + "&allowWatchBookmarks=true"
        )

    def test_drop(self) -> None:
        stream = self.open()
        self.assertEqual(self.fake.drop_watches(), 1)
        self.flush()
        assert stream.reason is not None
        # The chunked body ends without its last chunk.
        self.assertIsNotNone(stream.reason.check(ResponseFailed))
        self.assertEqual(self.fake.watches, [])

    def test_close(self) -> None:
        stream = self.open()
        other = self.watch("/api/v1/secrets?watch=true")
        self.assertEqual(self.fake.close_watches("warehouses"), 1)
        self.flush()
        self.assertTrue(stream.ended_cleanly)
        self.assertIsNone(other.reason)
        self.assertEqual(len(self.fake.watches), 1)

    def test_stall(self) -> None:
        """
        A stalled watch keeps its connection and sends nothing: no events,
        no bookmarks, not even the close at its deadline.
        """
        stream = self.open()
        self.assertEqual(self.fake.stall_watches(), 1)
        self.seed("a")
        self.clock.advance(7200)
        self.flush()
        self.assertEqual(stream.data, b"")
        self.assertIsNone(stream.reason)
        self.assertEqual(self.fake.watches[0].state, "stalled")
        self.fake.drop_watches()
        self.flush()
        self.assertFalse(stream.ended_cleanly)

    def test_next_watch(self) -> None:
        self.seed("a")
        d = self.fake.next_watch()
        self.assertNoResult(d)
        stream = self.watch(WH + "?watch=true&allowWatchBookmarks=true")
        watch = self.successResultOf(d)
        self.assertEqual(
            (watch.resource, watch.namespace, watch.state), (WAREHOUSES, "demo", "open")
        )
        # The initial events were out when it fired.
        self.assertEqual(len(stream.events), 2)

    def test_client_disconnect(self) -> None:
        d = self.stub.get("http://k" + WH + "?watch=true", unbuffered=True)
        self.flush()
        response = self.successResultOf(d)
        stream = Stream()
        response.deliverBody(stream)
        self.flush()
        self.assertEqual(len(self.fake.watches), 1)
        stream.transport.stopProducing()  # type: ignore[union-attr]
        self.flush()
        self.assertEqual(self.fake.watches, [])

    def test_fail_next_429(self) -> None:
        """
        429 is answered as the APF filter does: plain text, Retry-After.
        """
        self.fake.fail_next(2, 429, retry_after=7)
        for _ in range(2):
            answer = self.get(WH)
            self.assertEqual(
                (answer.code, answer.body),
                (429, b"Too many requests, please try again later.\n"),
            )
            self.assertEqual(answer.header("retry-after"), "7")
            self.assertEqual(answer.header("content-type"), "text/plain; charset=utf-8")
        self.assertEqual(self.get(WH).code, 200)
        self.assertEqual([r.code for r in self.fake.requests], [429, 429, 200])

    def test_fail_next_filtered(self) -> None:
        self.seed("a")
        fault = self.fake.fail_next(1, 503, method="PATCH", path="/warehouses/a")
        self.assertEqual(self.get(WH + "/a").code, 200)
        self.assertEqual(
            self.call(
                "PATCH", WH + "/b", {}, content_type="application/merge-patch+json"
            ).code,
            404,
        )
        self.assertStatus(
            self.call(
                "PATCH", WH + "/a", {}, content_type="application/merge-patch+json"
            ),
            503,
            "ServiceUnavailable",
        )
        self.assertEqual(fault.remaining, 0)
        self.assertEqual(
            self.call(
                "PATCH", WH + "/a", {}, content_type="application/merge-patch+json"
            ).code,
            200,
        )

    def test_fail_next_status(self) -> None:
        self.fake.fail_next(
            code=500, message="etcdserver: leader changed", retry_after=2
        )
        answer = self.get(WH)
        status = self.assertStatus(
            answer, 500, "InternalError", "etcdserver: leader changed"
        )
        self.assertEqual(status["details"], {"retryAfterSeconds": 2})
        self.assertEqual(answer.header("retry-after"), "2")

    def test_fail_in_stream(self) -> None:
        self.fake.fail_next(code=500, path="watch=true", in_stream=True)
        self.assertEqual(self.get(WH).code, 200)
        d = self.stub.get("http://k" + WH + "?watch=true&resourceVersion=0")
        self.flush()
        event = json.loads(
            self.successResultOf(self.stub.content(self.successResultOf(d)))
        )
        self.assertEqual(
            (event["type"], event["object"]["code"], event["object"]["reason"]),
            ("ERROR", 500, "InternalError"),
        )

    def test_abort_next(self) -> None:
        self.fake.abort_next(method="PATCH")
        self.seed("a")
        d = self.pending("PATCH", WH + "/a", {})
        self.failureResultOf(d, ResponseNeverReceived)
        self.assertIsNone(self.fake.requests[-1].code)

    def test_latency(self) -> None:
        self.fake.latency = 0.5
        d = self.pending("GET", WH)
        self.assertNoResult(d)
        self.clock.advance(0.5)
        self.flush()
        self.assertEqual(self.successResultOf(d).code, 200)

    def test_shutdown(self) -> None:
        """
        shutdown() cancels requests still waiting (latency, an RV not yet
        reached), leaving no timers behind.
        """
        self.fake.latency = 5
        self.pending("GET", WH)
        self.fake.latency = 0
        self.pending("GET", WH + f"?resourceVersion={self.fake.resource_version + 9}")
        self.open()
        # latency, RV wait, watch deadline, next bookmark
        self.assertEqual(len(self.clock.getDelayedCalls()), 4)
        self.successResultOf(self.fake.shutdown())
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.fake.watches, [])

    def test_fail_next_decoded_path(self) -> None:
        self.fake.fail_next(code=403, path="fieldSelector=metadata.name=a")
        self.assertEqual(self.get(WH + "?fieldSelector=metadata.name%3Db").code, 200)
        self.assertEqual(self.get(WH + "?fieldSelector=metadata.name%3Da").code, 403)
        self.assertEqual(self.fake.faults, [])

    def test_request_log(self) -> None:
        self.seed("a")
        self.call(
            "PATCH",
            WH + "/a?fieldManager=me",
            {"metadata": {"annotations": {"k": "v"}}},
            content_type="application/merge-patch+json",
            headers={"User-Agent": "bbreceiver/0.1"},
        )
        [entry] = self.fake.requests
        self.assertEqual(
            (entry.method, entry.path, entry.query, entry.code),
            ("PATCH", WH + "/a", {"fieldManager": ["me"]}, 200),
        )
        self.assertEqual(entry.headers["content-type"], "application/merge-patch+json")
        self.assertEqual(entry.headers["user-agent"], "bbreceiver/0.1")
        self.assertEqual(entry.json(), {"metadata": {"annotations": {"k": "v"}}})
        self.assertEqual(self.fake.requests_matching("patch", "/warehouses/"), [entry])
        self.assertEqual(self.fake.requests_matching("GET"), [])
        self.fake.clear_requests()
        self.assertEqual(self.fake.requests, [])

    def test_watch_in_log(self) -> None:
        self.watch(WH + "?watch=1")
        [entry] = self.fake.requests
        self.assertTrue(entry.is_watch)
        self.assertEqual(entry.code, 200)


class AuthTests(FakeKubeTestCase):
    fake_options = {"token": "t1"}

    def test_missing_or_wrong(self) -> None:
        for headers in [
            None,
            {"Authorization": "Bearer nope"},
            {"Authorization": "Basic dDE="},
        ]:
            self.assertStatus(
                self.get(WH, headers=headers), 401, "Unauthorized", "Unauthorized"
            )

    def test_rotation(self) -> None:
        self.assertEqual(self.get(WH, headers={"Authorization": "Bearer t1"}).code, 200)
        self.fake.token = "t2"
        self.assertEqual(self.get(WH, headers={"Authorization": "Bearer t1"}).code, 401)
        self.assertEqual(self.get(WH, headers={"Authorization": "bearer t2"}).code, 200)

    def test_public_paths(self) -> None:
        self.assertEqual(self.get("/version").code, 200)
        self.assertEqual(
            self.get("/version", headers={"Authorization": "Bearer nope"}).code, 401
        )


class YAMLTests(SynchronousTestCase):
    DOCUMENTS = """
apiVersion: kargo.akuity.io/v1alpha1
kind: Warehouse
metadata:
  name: wh-1
  namespace: demo
  annotations: {when: 2024-01-01T00:00:00Z}
---
# empty documents are skipped
---
apiVersion: v1
kind: List
items:
- apiVersion: kargo.akuity.io/v1alpha1
  kind: Promotion
  metadata: {name: p-1, namespace: demo}
  status: {phase: Running}
- apiVersion: v1
  kind: Secret
  metadata: {name: s}
  stringData: {secret: x}
"""

    def test_parse(self) -> None:
        objects = parse_yaml_objects(self.DOCUMENTS)
        self.assertEqual(
            [o["kind"] for o in objects], ["Warehouse", "Promotion", "Secret"]
        )
        self.assertEqual(
            objects[0]["metadata"]["annotations"]["when"], "2024-01-01T00:00:00Z"
        )

    def test_load(self) -> None:
        """
        Loading keeps status (unlike an API create) and puts namespace-less
        objects in C{default}; loading again replaces.
        """
        fake = FakeKube(Clock())
        fake.load_yaml(self.DOCUMENTS)
        self.assertEqual(
            fake.get("promo", "demo", "p-1")["status"], {"phase": "Running"}
        )
        self.assertEqual(
            fake.get("secrets", "default", "s")["data"], {"secret": "eA=="}
        )
        rv = fake.resource_version
        fake.load_yaml(self.DOCUMENTS.replace("Running", "Succeeded"))
        self.assertEqual(
            fake.get("promotions", "demo", "p-1")["status"], {"phase": "Succeeded"}
        )
        self.assertEqual(fake.resource_version, rv + 1)
        self.assertEqual(
            [n["metadata"]["name"] for n in fake.list_objects("namespaces")],
            ["default", "demo"],
        )

    def test_load_file(self) -> None:
        path = self.mktemp()
        with open(path, "w") as f:
            f.write(self.DOCUMENTS)
        fake = FakeKube(Clock())
        self.assertEqual(len(fake.load_yaml_file(path)), 3)

    def test_unknown_kind(self) -> None:
        with self.assertRaises(KeyError):
            FakeKube(Clock()).load_yaml(
                "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n"
            )

    def test_python_errors(self) -> None:
        fake = FakeKube(Clock())
        with self.assertRaises(KubeError) as raised:
            fake.get("warehouses", "demo", "nope")
        self.assertEqual(
            raised.exception.status()["message"],
            'warehouses.kargo.akuity.io "nope" not found',
        )


class PatchFunctionTests(SynchronousTestCase):
    def test_merge_patch_rfc7386_examples(self) -> None:
        # From RFC 7386 appendix A.
        for target, patch, result in [
            ({"a": "b"}, {"a": "c"}, {"a": "c"}),
            ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
            ({"a": "b"}, {"a": None}, {}),
            ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
            ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
            ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
            ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
            (["a", "b"], ["c", "d"], ["c", "d"]),
            ({"a": "b"}, ["c"], ["c"]),
            ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
            ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
            ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
        ]:
            self.assertEqual(merge_patch(target, patch), result)

    def test_json_patch_operations(self) -> None:
        doc = {"a": {"b": [1, 2]}, "c": "x"}
        self.assertEqual(
            json_patch(doc, [{"op": "add", "path": "/a/b/1", "value": 9}])["a"]["b"],
            [1, 9, 2],
        )
        self.assertEqual(
            json_patch(doc, [{"op": "add", "path": "/a/b/-", "value": 9}])["a"]["b"],
            [1, 2, 9],
        )
        self.assertEqual(
            json_patch(doc, [{"op": "remove", "path": "/a/b/0"}])["a"]["b"], [2]
        )
        self.assertEqual(
            json_patch(doc, [{"op": "move", "from": "/c", "path": "/d"}]),
            {"a": {"b": [1, 2]}, "d": "x"},
        )
        self.assertEqual(
            json_patch(doc, [{"op": "copy", "from": "/c", "path": "/a/c"}])["a"]["c"],
            "x",
        )
        self.assertEqual(doc, {"a": {"b": [1, 2]}, "c": "x"})
        for bad in [
            [{"op": "replace", "path": "/nope", "value": 1}],
            [{"op": "remove", "path": "/a/b/5"}],
            [{"op": "test", "path": "/c", "value": "y"}],
            [{"op": "test", "path": "/a/b/0", "value": True}],
            [{"op": "add", "path": "/a/b/01", "value": 1}],
            [{"op": "move", "from": "/a", "path": "/a/x"}],
        ]:
            self.assertRaises(PatchConflict, json_patch, doc, bad)
        for bad in [
            {},
            [{"op": "nope", "path": "/"}],
            [{"op": "add", "path": "/x"}],
            [{"op": "add", "path": "x", "value": 1}],
        ]:
            self.assertRaises(InvalidPatch, json_patch, doc, bad)

    @given(st.text())
    def test_pointer_escaping(self, token: str) -> None:
        self.assertEqual(parse_pointer("/" + escape_pointer_token(token)), [token])

    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=3),
        lambda children: (
            st.lists(children, max_size=3)
            | st.dictionaries(st.text(max_size=3), children, max_size=3)
        ),
        max_leaves=10,
    )

    @given(json_values, st.dictionaries(st.text(max_size=3), json_values, max_size=3))
    def test_merge_patch_idempotent(self, target: Any, patch: dict[str, Any]) -> None:
        once = merge_patch(target, patch)
        self.assertEqual(merge_patch(once, patch), once)
        self.assertEqual(merge_patch(once, {}), once)


class SelectorParsingTests(SynchronousTestCase):
    def test_labels(self) -> None:
        selector = parse_label_selector("a=1, b!=2,c in (x, ,y),!d, e, f notin (z)")
        self.assertTrue(selector.matches({"a": "1", "c": "", "e": "v"}))
        self.assertFalse(selector.matches({"a": "1", "c": "x", "e": "v", "d": ""}))
        self.assertFalse(selector.matches({"a": "1", "c": "x", "e": "v", "f": "z"}))
        self.assertTrue(parse_label_selector("").matches({}))
        self.assertTrue(parse_label_selector("a=").matches({"a": ""}))
        for bad in ["a b", "a in x", "a in (x", "=a", "a,", "!", "a=b=c", "a=(b)"]:
            self.assertRaises(SelectorError, parse_label_selector, bad)

    def test_fields(self) -> None:
        fields = ("metadata.name", "metadata.namespace")
        selector = parse_field_selector(
            r"metadata.name=a\,b,metadata.namespace!=x", fields
        )
        self.assertTrue(
            selector.matches({"metadata.name": "a,b", "metadata.namespace": "y"})
        )
        self.assertEqual(selector.exact("metadata.name"), "a,b")
        self.assertRaises(SelectorError, parse_field_selector, "status.phase=x", fields)
        self.assertRaises(SelectorError, parse_field_selector, "metadata.name", fields)


class HistoryProperties(SynchronousTestCase):
    """
    The store rebuilds any past state from its history: an exact list at
    every RV equals what was stored at that RV.
    """

    operations = st.lists(
        st.tuples(
            st.sampled_from(["create", "label", "spec", "delete", "noop"]),
            st.sampled_from("abc"),
        ),
        max_size=25,
    )

    @settings(max_examples=60, deadline=None)
    @given(operations)
    def test_exact_lists_replay_history(
        self, operations: list[tuple[str, str]]
    ) -> None:
        clock = Clock()
        fake = FakeKube(clock)
        stub: Any = StubTreq(fake.resource())
        snapshots: dict[int, list[dict[str, Any]]] = {fake.resource_version: []}
        for index, (op, name) in enumerate(operations):
            exists = any(
                o["metadata"]["name"] == name for o in fake.list_objects("warehouses")
            )
            try:
                if op == "create" and not exists:
                    fake.create(warehouse(name))
                elif op == "label" and exists:
                    fake.patch(
                        "warehouses",
                        "demo",
                        name,
                        {"metadata": {"labels": {"i": str(index)}}},
                    )
                elif op == "spec" and exists:
                    fake.patch("warehouses", "demo", name, {"spec": {"i": index}})
                elif op == "delete" and exists:
                    fake.delete("warehouses", "demo", name)
                elif op == "noop" and exists:
                    fake.patch("warehouses", "demo", name, {})
            except KubeError:  # pragma: no cover
                self.fail("unexpected API error")
            snapshots[fake.resource_version] = fake.list_objects("warehouses")
        for rv, expected in snapshots.items():
            d = stub.get(
                f"http://k{ALL_WH}?resourceVersion={rv}&resourceVersionMatch=Exact"
            )
            stub.flush()
            document = json.loads(
                self.successResultOf(stub.content(self.successResultOf(d)))
            )
            self.assertEqual(document["items"], expected)
            self.assertEqual(document["metadata"]["resourceVersion"], str(rv))
