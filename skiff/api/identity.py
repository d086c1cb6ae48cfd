"""Who is calling: the identity an API request is authenticated as.

Kubernetes' user.Info in small: a user name and its groups. Certificates carry the user
in the subject's CN and the groups in its O attributes (as kube-apiserver reads them);
ServiceAccount tokens carry `system:serviceaccount:<ns>:<name>`.

Well-known identities (names as the issue and Kubernetes give them):
- members of `system:masters` may do anything (RBAC is not even asked, as in Kubernetes);
- an agent is `skiff:node:<node>` in group `skiff:nodes` (Kubernetes: system:node:<node> in
  system:nodes);
- a control-plane replica calling an agent or another replica is
  `skiff:controlplane:<replica>` in group `skiff:controlplane`;
- a ServiceAccount is `system:serviceaccount:<ns>:<name>` in groups
  `system:serviceaccounts`, `system:serviceaccounts:<ns>`;
- every authenticated identity is also in `system:authenticated`.
"""

from dataclasses import dataclass

MASTERS = "system:masters"
AUTHENTICATED = "system:authenticated"
NODES_GROUP = "skiff:nodes"
NODE_PREFIX = "skiff:node:"
CONTROLPLANE_GROUP = "skiff:controlplane"
CONTROLPLANE_PREFIX = "skiff:controlplane:"
SA_PREFIX = "system:serviceaccount:"
SA_GROUP = "system:serviceaccounts"


@dataclass(frozen=True)
class Identity:
    user: str
    groups: tuple = ()

    def in_group(self, group: str) -> bool:
        return group in self.groups

    @property
    def is_master(self) -> bool:
        return MASTERS in self.groups

    @property
    def node_name(self):
        """The node an agent identity speaks for; None for any other identity."""
        if self.user.startswith(NODE_PREFIX) and NODES_GROUP in self.groups:
            return self.user[len(NODE_PREFIX):]
        return None


# The identity of every call while the API runs without TLS (the lab before mTLS):
# plaintext callers cannot be told apart, so they are all the cluster's administrator.
PLAINTEXT_ADMIN = Identity("skiff:admin", (MASTERS, AUTHENTICATED))


def node_identity(node: str) -> Identity:
    return Identity(NODE_PREFIX + node, (NODES_GROUP, AUTHENTICATED))


def controlplane_identity(replica: str) -> Identity:
    return Identity(CONTROLPLANE_PREFIX + replica, (CONTROLPLANE_GROUP, MASTERS, AUTHENTICATED))


def serviceaccount_identity(namespace: str, name: str) -> Identity:
    return Identity(f"{SA_PREFIX}{namespace}:{name}",
                    (SA_GROUP, f"{SA_GROUP}:{namespace}", AUTHENTICATED))
