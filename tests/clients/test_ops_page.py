"""The built-in ops page (GET / on klamm.http.listener) in a real headless browser
(Debian's chromium, installed by tests/setup.sh): the page loads from the broker with
no network beyond it, runs its polling script, and shows the broker count, the topic
and a lagging group's lag; on a 3-node cluster it shows the under-replicated partition
after a follower is killed. Screenshots are saved under tests/artifacts/ (git-ignored)
and the pytest tmp dir.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from cluster_fixture import SESSION_TIMEOUT_MS, cluster3  # noqa: F401 - fixture
from conftest import unique_topic, wait_until
from helpers import create_topic
from test_metrics import http_get, scrape, value

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium missing: run tests/setup.sh")


def browser(url: str, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    """One headless chromium run against `url` (own profile dir, bounded)."""
    profile = tmp_path / f"chromium-profile-{time.monotonic_ns()}"
    argv = [CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox", "--disable-dev-shm-usage",
            f"--user-data-dir={profile}", "--no-first-run", "--disable-extensions",
            "--virtual-time-budget=5000", *extra, url]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)


def dump_dom(url: str, tmp_path: Path) -> str:
    r = browser(url, tmp_path, "--dump-dom")
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


def screenshot(url: str, tmp_path: Path, name: str) -> Path:
    shot = tmp_path / name
    r = browser(url, tmp_path, f"--screenshot={shot}", "--window-size=1280,900")
    assert r.returncode == 0 and shot.exists() and shot.stat().st_size > 1000, r.stderr[-2000:]
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(shot, ARTIFACTS / name)
    print(f"screenshot: {ARTIFACTS / name}")
    return shot


def text_of(dom: str, element_id: str) -> str:
    m = re.search(rf'id="{element_id}"[^>]*>([^<]*)<', dom)
    assert m, f"#{element_id} not in the page"
    return m.group(1)


def test_page_shows_brokers_topic_and_group_lag(broker_factory, tmp_path):
    b = broker_factory()
    topic = unique_topic("page")
    create_topic(b, topic, partitions=2)
    p = Producer({"bootstrap.servers": b.bootstrap, "linger.ms": 5})
    for i in range(40):
        p.produce(topic, value=f"v{i}".encode(), partition=i % 2)
    assert p.flush(30) == 0
    group = unique_topic("pagegrp")
    c = Consumer({"bootstrap.servers": b.bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    try:
        c.assign([TopicPartition(topic, 0, 0), TopicPartition(topic, 1, 0)])
        got = 0
        deadline = time.monotonic() + 30
        while got < 10 and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                got += 1
        # Commit 5 on partition 0 and 3 on partition 1: lag 15 + 17 = 32.
        c.commit(offsets=[TopicPartition(topic, 0, 5), TopicPartition(topic, 1, 3)], asynchronous=False)
    finally:
        c.close()
    s = scrape(b.http_url)
    assert value(s, "kafka_consumergroup_lag", consumergroup=group, topic=topic, partition=0) == 15

    status, ctype, html = http_get(b.http_url + "/")
    assert status == 200 and ctype.startswith("text/html")
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", ""), "the page loads nothing from elsewhere"

    dom = dump_dom(b.http_url + "/", tmp_path)
    assert text_of(dom, "broker-count") == "1"
    assert text_of(dom, "fenced-count") == "0"
    assert text_of(dom, "controller") == "1"
    assert f'data-topic="{topic}"' in dom, "topic row"
    assert f'data-group="{group}"' in dom, "group block"
    group_block = dom[dom.index(f'data-group="{group}"'):]
    m = re.search(r'class="[^"]*group-lag[^"]*">(\d+)<', group_block)
    assert m and int(m.group(1)) == 32, group_block[:600]
    assert "<svg" in group_block and "polyline" in group_block, "lag chart"
    screenshot(b.http_url + "/", tmp_path, "ops-page-single-node.png")


def test_page_highlights_an_under_replicated_partition(cluster3, tmp_path):
    c = cluster3
    topic = unique_topic("pageurp")
    a = AdminClient({"bootstrap.servers": c.bootstrap(c.up())})
    a.create_topics([NewTopic(topic, 1, 3)], operation_timeout=20, request_timeout=20)[topic].result(30)
    c.wait_healthy([topic], {topic: 1}, timeout=30, want_isr=3)
    leader = c.node(c.leader_of(topic, 0))
    follower = next(n for n in c.nodes if n.node_id != leader.node_id)
    dom = dump_dom(leader.http_url + "/", tmp_path)
    assert text_of(dom, "broker-count") == "3"
    assert text_of(dom, "urp-count") == "0"
    follower.kill9()
    wait_until(lambda: value(scrape(leader.http_url), "kafka_server_replicamanager_underreplicatedpartitions") > 0,
               timeout=SESSION_TIMEOUT_MS / 1000 + 30, what="the partition to become under-replicated")
    dom = dump_dom(leader.http_url + "/", tmp_path)
    assert text_of(dom, "urp-count") == "1"
    row = re.search(rf'<tr class="urp" data-topic="{topic}">.*?</tr>', dom)
    assert row and "under-replicated" in row.group(0), "the partition's row is highlighted"
    screenshot(leader.http_url + "/", tmp_path, "ops-page-under-replicated.png")
