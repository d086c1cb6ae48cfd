"""The cluster's PKI (issue 10): CA and certificates (certs.py), the CA on disk and the
well-known identities it issues (authority.py), gRPC TLS credentials and peer identity
(tls.py), automatic renewal (renew.py), join tokens (tokens.py)."""
