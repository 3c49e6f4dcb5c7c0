"""The schema registry on a 3-node cluster: every broker serves it from the replicated
`_schemas` topic. Registrations through different nodes (also at the same moment) get
unique, consistent ids; `kill -9` of the `_schemas` leader between registrations loses
nothing that was acknowledged; every node answers the same after catching up."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from cluster_fixture import Cluster, cluster3  # noqa: F401 - fixture
from conftest import wait_until

CT = "application/vnd.schemaregistry.v1+json"


def schema(name: str, extra_fields: int = 0) -> str:
    fields = [{"name": "id", "type": "string"}]
    fields += [{"name": f"f{i}", "type": "int", "default": 0} for i in range(extra_fields)]
    return json.dumps({"type": "record", "name": name, "namespace": "shop", "fields": fields})


def register(node, subject: str, text: str, timeout: float = 60.0) -> int:
    """POST a registration to `node`, retrying while the cluster fails over (bounded)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            r = requests.post(f"{node.registry_url}/subjects/{subject}/versions", data=json.dumps({"schema": text}),
                              headers={"Content-Type": CT}, timeout=30)
            if r.status_code == 200:
                return r.json()["id"]
            assert r.status_code >= 500, (r.status_code, r.text)  # only the store's faults are retried
            last = r.text
        except requests.RequestException as e:
            last = str(e)
        time.sleep(0.5)
    raise AssertionError(f"registration through node {node.node_id} failed: {last}")


def schema_by_id(node, sid: int):
    r = requests.get(f"{node.registry_url}/schemas/ids/{sid}", timeout=10)
    return r.json()["schema"] if r.status_code == 200 else None


def versions(node, subject: str):
    r = requests.get(f"{node.registry_url}/subjects/{subject}/versions", timeout=10)
    return r.json() if r.status_code == 200 else None


def test_ids_unique_and_consistent_across_nodes_and_a_kill(cluster3: Cluster):
    n1, n2, n3 = cluster3.nodes
    ida = register(n1, "orders-value", schema("Order"))
    # Read through the other nodes right away: a miss catches up with the log first.
    for n in (n2, n3):
        assert schema_by_id(n, ida) is not None, f"node {n.node_id} does not know id {ida}"
    assert register(n3, "orders-value", schema("Order")) == ida, "the same schema keeps its id on any node"

    # Registrations at the same moment through different nodes.
    with ThreadPoolExecutor(4) as pool:
        futures = [
            pool.submit(register, n1, "x-value", schema("X")),
            pool.submit(register, n2, "y-value", schema("Y")),
            pool.submit(register, n2, "z-value", schema("Z")),
            pool.submit(register, n3, "z-value", schema("Z")),
        ]
        idx, idy, idz1, idz2 = (f.result() for f in futures)
    assert idz1 == idz2
    assert len({ida, idx, idy, idz1}) == 4, (ida, idx, idy, idz1)

    # Kill -9 the leader of _schemas, register through a survivor.
    leader = cluster3.leader_of("_schemas", 0)
    victim = cluster3.node(leader)
    victim.kill9()
    survivors = [n for n in cluster3.nodes if n is not victim]
    idb = register(survivors[0], "orders-value", schema("Order", extra_fields=1))
    idc = register(survivors[1], "other-value", schema("Other"))
    assert len({ida, idx, idy, idz1, idb, idc}) == 6

    victim.start()
    expected = {sid: schema_by_id(survivors[0], sid) for sid in (ida, idx, idy, idz1, idb, idc)}
    assert all(expected.values()), expected

    def all_agree():
        for n in cluster3.nodes:
            for sid, text in expected.items():
                if schema_by_id(n, sid) != text:
                    return False
            if versions(n, "orders-value") != [1, 2]:
                return False
        return True
    wait_until(all_agree, timeout=60, what="every node answers the same ids and versions")
    # A registration after the restart still gets a fresh id, on the restarted node too.
    idd = register(victim, "late-value", schema("Late"))
    assert idd not in expected
