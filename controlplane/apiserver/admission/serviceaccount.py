"""ServiceAccount: a new pod runs as an account that exists, and says whether its token is mounted.

Kubernetes' admission plugin of the same name, for pods being created:
- spec.serviceAccountName defaults to `default`;
- an account that does not exist refuses the pod (Forbidden: `error looking up service
  account NS/NAME: serviceaccount "NAME" not found`), as Kubernetes does. One exception:
  the `default` account of a namespace made a moment ago, which the serviceaccounts
  controller has not created yet, does not refuse the pod (Kubernetes refuses it, and
  callers retry; skiff's own tools create a namespace and its pods at once). The node agent
  waits for the account before it mounts the token (its TokenRequest fails until then);
- automountServiceAccountToken: Kubernetes adds a projected `kube-api-access-*` volume
  unless the pod or (when the pod leaves it unset) the account sets false. skiff has no
  projected volumes in its API yet: the plugin instead writes the decision into the pod's
  own spec.automountServiceAccountToken, and the node agent mounts the credentials at
  /var/run/secrets/kubernetes.io/serviceaccount when it is true (nodeagent/podsync/satoken.py).
  Decided once, at creation, as Kubernetes does: changing the account later does not
  change running pods.
- imagePullSecrets: a pod that lists none gets the account's (names only), as Kubernetes'
  plugin does; also decided once, at creation.

Checked against the replica's applied state (the view): a little behind the log at
worst, like Kubernetes' informer-backed plugin.
"""

from skiff.api import objects_pb2 as pb
from skiff.api.errors import FieldError
from skiff.api.kinds.pod import POD
from skiff.api.kinds.serviceaccount import SERVICE_ACCOUNT

from controlplane.apiserver.admission.chain import CREATE, AdmissionError, Attributes, MutatingPlugin

DEFAULT = "default"


def admit(a: Attributes) -> None:
    if a.kind is not POD or a.operation != CREATE or a.old is not None:
        return
    spec = a.obj.spec
    if not spec.service_account_name:
        spec.service_account_name = DEFAULT
    name = spec.service_account_name
    sa = a.view.get(SERVICE_ACCOUNT.name, a.namespace, name)
    if sa is None and name != DEFAULT:
        raise AdmissionError(FieldError(
            "", f'pods "{a.name}" is forbidden: error looking up service account {a.namespace}/{name}: '
                f'serviceaccount "{name}" not found'), code="forbidden")
    if not spec.HasField("automount_service_account_token"):
        spec.automount_service_account_token = not (
            sa is not None and sa.HasField("automount_service_account_token")
            and not sa.automount_service_account_token)
    if not spec.image_pull_secrets and sa is not None:
        spec.image_pull_secrets.extend(pb.LocalObjectReference(name=r.name) for r in sa.image_pull_secrets)


SERVICE_ACCOUNT_PLUGIN = MutatingPlugin("ServiceAccount", admit, needs_view=True)
