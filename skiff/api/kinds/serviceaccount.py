"""ServiceAccount (core/v1): an identity for the processes of pods.

A pod runs as one (spec.serviceAccountName, default `default`); the node agent mounts a
token for it at /var/run/secrets/kubernetes.io/serviceaccount unless
automountServiceAccountToken is false on the pod or, when the pod leaves it unset, on the
account (Kubernetes' ServiceAccount admission plugin). The token authenticates to the API as
`system:serviceaccount:<namespace>:<name>` (controlplane/apiserver/sa_tokens.py). Every
namespace has a `default` one, made by the serviceaccounts controller.

`kubectl get sa` shows SECRETS: the legacy long-lived token Secrets it lists. skiff issues
only bound tokens (Kubernetes' default since 1.24), so the field is refused as not
supported yet (skiff/api/unsupported.py) and the column is always 0.
"""

from skiff.api import objects_pb2 as pb
from skiff.api.kinds.registry import Kind, register


def _validate(sa: pb.ServiceAccount, errs) -> None:
    """No rules of its own: the name (a DNS subdomain) is checked with the metadata."""


def _row(sa: pb.ServiceAccount):
    return ["0"], []


def _describe(sa: pb.ServiceAccount) -> str:
    """kubectl's section: skiff has neither pull secrets nor token Secrets on accounts."""
    lines = ["Image pull secrets:  <none>", "Mountable secrets:   <none>", "Tokens:              <none>"]
    if sa.HasField("automount_service_account_token"):
        lines.append(f"Automount token:     {str(sa.automount_service_account_token).lower()}")
    return "\n".join(lines)


SERVICE_ACCOUNT = register(Kind(
    "ServiceAccount", "v1", "serviceaccounts", ("sa",), True, pb.ServiceAccount, "service_account", False,
    validate=_validate, columns=("SECRETS", "AGE"), row=_row, describe=_describe,
))
