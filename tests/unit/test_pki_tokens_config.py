"""Join tokens (format, stored data, checks, --ttl) and the CLI's config file (contexts)."""

import base64
import datetime

import pytest
import yaml

from skiff import clientconfig
from skiff.pki import certs, tokens

UTC = datetime.timezone.utc
DIGEST = "sha256:" + "ab" * 32


def test_token_round_trips_and_carries_the_ca_digest():
    token_id, secret = tokens.new_id_and_secret()
    text = tokens.format_token(DIGEST, token_id, secret)
    assert text.startswith("SKIFF1-" + "ab" * 32 + "-")
    assert tokens.parse_token(text) == (DIGEST, token_id, secret)


@pytest.mark.parametrize("text", ["", "SKIFF1-abc-abcdef.0123456789abcdef", "K10" + "ab" * 32 + "::server:x",
                                  "SKIFF1-" + "ab" * 32 + "-ABCDEF.0123456789abcdef",
                                  "SKIFF1-" + "ab" * 32 + "-abcdef.0123"])
def test_malformed_tokens_are_refused_naming_the_form(text):
    with pytest.raises(tokens.TokenError, match="expected SKIFF1-"):
        tokens.parse_token(text)


def test_the_stored_token_holds_only_the_hash_of_the_secret():
    data = tokens.stored_data("abcdef", "0123456789abcdef", 3600)
    assert "0123456789abcdef" not in "".join(data.values())
    assert data["token-secret-sha256"] == tokens.hash_secret("0123456789abcdef")


NOW = datetime.datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("data, token_id, secret, error", [
    (tokens.stored_data("abcdef", "s" * 16, 60, now=NOW), "abcdef", "s" * 16, None),
    (tokens.stored_data("abcdef", "s" * 16, None, now=NOW), "abcdef", "s" * 16, None),     # never expires
    (None, "abcdef", "s" * 16, "does not exist"),
    (tokens.stored_data("abcdef", "s" * 16, 60, now=NOW), "abcdef", "t" * 16, "wrong secret"),
    (tokens.stored_data("abcdef", "s" * 16, 60, now=NOW - datetime.timedelta(seconds=61)), "abcdef", "s" * 16,
     "expired at"),
])
def test_check(data, token_id, secret, error):
    if error is None:
        tokens.check(data, token_id, secret, now=NOW)
    else:
        with pytest.raises(tokens.TokenError, match=error):
            tokens.check(data, token_id, secret, now=NOW)


@pytest.mark.parametrize("text, seconds", [("24h", 86400), ("30m", 1800), ("90s", 90), ("2h30m", 9000), ("0", 0)])
def test_ttl(text, seconds):
    assert tokens.parse_ttl(text) == seconds


@pytest.mark.parametrize("text", ["", "1d", "abc", "-5m"])
def test_bad_ttl(text):
    with pytest.raises(tokens.TokenError, match="--ttl"):
        tokens.parse_ttl(text)


# ------------------------------------------------------------ the client config

def test_contexts_resolve_servers_and_credentials(tmp_path, monkeypatch):
    monkeypatch.delenv("SKIFF_SERVER", raising=False)
    ca, ca_key = certs.create_ca()
    cert, key = certs.issue(ca, ca_key, common_name="skiff:admin", groups=("system:masters",))
    path = str(tmp_path / "config")
    doc = {}
    clientconfig.upsert_context(doc, clientconfig.context_doc("admin@lab", ["127.0.0.1:7100"], user="skiff:admin",
                                                              ca=ca, cert=cert, key=key))
    clientconfig.upsert_context(doc, clientconfig.context_doc("plain", ["10.0.0.1:7100"]))
    clientconfig.save(path, doc)
    assert (tmp_path / "config").stat().st_mode & 0o777 == 0o600
    endpoints, creds = clientconfig.resolve(config_path=path)
    assert endpoints == ["127.0.0.1:7100"] and creds.cert == cert and creds.key == key and creds.ca == ca
    # --server keeps the context's credentials
    endpoints, creds = clientconfig.resolve("127.0.0.2:7100", config_path=path)
    assert endpoints == ["127.0.0.2:7100"] and creds.cert == cert
    doc["currentContext"] = "plain"
    clientconfig.save(path, doc)
    assert clientconfig.resolve(config_path=path) == (["10.0.0.1:7100"], None)
    assert base64.b64decode(yaml.safe_load(open(path))["contexts"][0]["clientKeyData"]) == key


def test_the_older_servers_form_is_a_plaintext_context(tmp_path, monkeypatch):
    monkeypatch.delenv("SKIFF_SERVER", raising=False)
    path = tmp_path / "config"
    path.write_text("servers: [127.0.0.1:7100]\n")
    assert clientconfig.resolve(config_path=str(path)) == (["127.0.0.1:7100"], None)


def test_an_unknown_current_context_is_named(tmp_path, monkeypatch):
    monkeypatch.delenv("SKIFF_SERVER", raising=False)
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump({"currentContext": "nope", "contexts": [{"name": "a", "servers": ["x:1"]}]}))
    with pytest.raises(clientconfig.ConfigError, match="currentContext 'nope' is not one of the contexts"):
        clientconfig.resolve(config_path=str(path))


def test_no_config_and_no_server_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.delenv("SKIFF_SERVER", raising=False)
    with pytest.raises(clientconfig.ConfigError, match="skiff lab up"):
        clientconfig.resolve(config_path=str(tmp_path / "missing"))
    assert clientconfig.resolve("h:1", config_path=str(tmp_path / "missing")) == (["h:1"], None)


def test_a_context_with_a_token_or_token_file(tmp_path, monkeypatch):
    monkeypatch.delenv("SKIFF_SERVER", raising=False)
    ca, _ = certs.create_ca()
    path = str(tmp_path / "config")
    ctx = clientconfig.context_doc("robot", ["10.0.0.1:7300"], ca=ca)
    clientconfig.save(path, clientconfig.upsert_context({}, {**ctx, "token": "abc.def.ghi\n"}))
    endpoints, creds, bearer = clientconfig.resolve_all(config_path=path)
    assert endpoints == ["10.0.0.1:7300"] and creds.ca == ca and not creds.cert and bearer == {"token": "abc.def.ghi"}
    (tmp_path / "token").write_text("t")
    clientconfig.save(path, clientconfig.upsert_context({}, {**ctx, "tokenFile": str(tmp_path / "token")}))
    assert clientconfig.resolve_all(config_path=path)[2] == {"token_file": str(tmp_path / "token")}
    for bad, msg in (({**ctx, "token": "a", "tokenFile": "b"}, "token and tokenFile are exclusive"),
                     ({**ctx, "tokenFile": str(tmp_path / "nope")}, "tokenFile: .*no such file"),
                     ({"name": "robot", "servers": ["h:1"], "token": "a"}, "a token needs certificateAuthority")):
        clientconfig.save(path, clientconfig.upsert_context({}, bad))
        with pytest.raises(clientconfig.ConfigError, match=msg):
            clientconfig.resolve_all(config_path=path)


def test_in_cluster_config_from_the_mounted_serviceaccount(tmp_path, monkeypatch):
    """client-go's InClusterConfig: no config file, KUBERNETES_SERVICE_HOST/PORT and the
    mounted token, ca.crt and namespace."""
    monkeypatch.delenv("SKIFF_SERVER", raising=False)
    ca, _ = certs.create_ca()
    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "ca.crt").write_bytes(ca)
    (sa / "namespace").write_text("team-a")
    monkeypatch.setattr(clientconfig, "SERVICEACCOUNT_DIR", str(sa))
    missing = str(tmp_path / "missing")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    with pytest.raises(clientconfig.ConfigError, match="no control plane configured"):
        clientconfig.resolve_all(config_path=missing)       # no token mounted: not in-cluster
    (sa / "token").write_text("abc.def.ghi")
    endpoints, creds, bearer = clientconfig.resolve_all(config_path=missing)
    assert endpoints == ["10.96.0.1:443"] and creds.ca == ca and bearer == {"token_file": str(sa / "token")}
    assert clientconfig.default_namespace(missing) == "team-a"
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
    assert clientconfig.resolve_all(config_path=missing)[0] == ["[fd00::1]:443"]
    # a config file wins over the in-cluster config
    clientconfig.save(str(tmp_path / "config"), {"servers": ["127.0.0.1:7100"]})
    assert clientconfig.resolve_all(config_path=str(tmp_path / "config")) == (["127.0.0.1:7100"], None, {})
    assert clientconfig.default_namespace(str(tmp_path / "config")) is None
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST")
    assert clientconfig.default_namespace(missing) is None


def test_a_token_needs_tls():
    from skiff import client as clientmod
    with pytest.raises(clientmod.ApiError, match="a bearer token needs TLS"):
        clientmod.Client(["127.0.0.1:1"], token="abc")
