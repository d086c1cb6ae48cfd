"""Agent config key dnsUpstream (nodeagent/config.py) and its parsing (skiff/dnsserve.py)."""

import pytest

from nodeagent import config
from nodeagent.dns.server import bridge_address
from skiff.dnsserve import parse_upstream

BASE = {"nodeName": "n1", "servers": ["127.0.0.1:7100"], "address": "10.0.0.1", "listen": "10.0.0.1:10250",
        "dockerHost": "unix:///run/d.sock", "dataDir": "/tmp/x", "podNetwork": True}


def test_dns_upstream_round_trips():
    cfg = config.parse({**BASE, "dnsUpstream": "10.200.0.53:5353"})
    assert cfg.dns_upstream == "10.200.0.53:5353"
    assert config.parse(__import__("yaml").safe_load(config.dump(cfg))) == cfg
    assert config.parse(BASE).dns_upstream == ""


@pytest.mark.parametrize("bad", ["", ":53", "1.2.3.4:x", "1.2.3.4:70000", 53])
def test_bad_dns_upstream_is_refused(bad):
    with pytest.raises(config.ConfigError, match="dnsUpstream"):
        config.parse({**BASE, "dnsUpstream": bad})


@pytest.mark.parametrize("text,want", [("10.0.0.5", ("10.0.0.5", 53)), ("10.0.0.5:5353", ("10.0.0.5", 5353)),
                                       ("", None)])
def test_parse_upstream(text, want):
    assert parse_upstream(text) == want


def test_bridge_address_is_the_first_address_of_the_pod_cidr():
    assert bridge_address("10.244.3.0/24") == "10.244.3.1"
