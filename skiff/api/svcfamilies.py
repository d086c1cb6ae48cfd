"""A Service's IP families (spec.ipFamilyPolicy, spec.ipFamilies) on skiff's single-stack IPv4 cluster.

skiff's Service network is IPv4 only, so every Service is what Kubernetes makes of it on
a single-stack IPv4 cluster (pkg/registry/core/service/storage/alloc.go, initIPFamilyFields):

- ExternalName: no families and no policy (setting either is Forbidden);
- headless (clusterIP: None) without a selector: policy RequireDualStack unless given, and
  its families completed to both (IPv4, IPv6) unless the policy is SingleStack. No address
  is allocated for it, so nothing about the cluster is checked (Kubernetes' special case);
- every other Service: policy SingleStack unless given (RequireDualStack when two families
  are given), families [IPv4]. PreferDualStack is accepted and stays [IPv4];
  RequireDualStack and any IPv6 family are refused, the cluster has no IPv6.

Pure: defaults(spec) at admission (so `get -o yaml` shows them), validate(spec, errs) after
it, validate_update / carry_over for updates. Nothing else in skiff reads the families:
the allocator hands out IPv4 clusterIPs, the proxy programs IPv4 rules.
"""

from skiff.api.validation import duplicate, enum, forbidden, invalid

IPV4, IPV6 = "IPv4", "IPv6"
FAMILIES = (IPV4, IPV6)
SINGLE, PREFER, REQUIRE = "SingleStack", "PreferDualStack", "RequireDualStack"
POLICIES = (SINGLE, PREFER, REQUIRE)
CLUSTER_FAMILY = IPV4      # the lab's, and every skiff cluster's, only Service family


def headless_selectorless(spec) -> bool:
    return spec.cluster_ip == "None" and not spec.selector


def defaults(spec) -> None:
    """Fill in the policy and families as Kubernetes does on a single-stack IPv4 cluster."""
    if spec.type == "ExternalName":
        return
    if headless_selectorless(spec):
        if not spec.ip_families:
            spec.ip_families.append(CLUSTER_FAMILY)
        if not spec.HasField("ip_family_policy"):
            spec.ip_family_policy = REQUIRE
        if spec.ip_family_policy != SINGLE and len(spec.ip_families) == 1 and spec.ip_families[0] in FAMILIES:
            spec.ip_families.append(IPV6 if spec.ip_families[0] == IPV4 else IPV4)
        return
    if not spec.HasField("ip_family_policy"):
        spec.ip_family_policy = REQUIRE if len(spec.ip_families) == 2 else SINGLE
    if not spec.ip_families:
        spec.ip_families.append(CLUSTER_FAMILY)


def validate(spec, errs) -> None:
    """Kubernetes' checks and messages, for a defaulted spec."""
    if spec.type == "ExternalName":
        if spec.ip_families:
            forbidden(errs, "spec.ipFamilies", "may not be set for ExternalName services")
        if spec.HasField("ip_family_policy"):
            forbidden(errs, "spec.ipFamilyPolicy", "may not be set for ExternalName services")
        return
    if spec.HasField("ip_family_policy"):
        enum(errs, "spec.ipFamilyPolicy", spec.ip_family_policy, POLICIES)
    seen = set()
    for i, family in enumerate(spec.ip_families):
        enum(errs, f"spec.ipFamilies[{i}]", family, FAMILIES)
        if family in seen:
            duplicate(errs, f"spec.ipFamilies[{i}]", family)
        seen.add(family)
    if len(spec.ip_families) > 2:
        invalid(errs, "spec.ipFamilies", list(spec.ip_families), "may specify no more than two IP families")
    if spec.ip_family_policy == SINGLE and len(spec.ip_families) == 2:
        invalid(errs, "spec.ipFamilyPolicy", SINGLE,
                "must be 'RequireDualStack' or 'PreferDualStack' when multiple IP families are specified")
    if headless_selectorless(spec):
        return   # no address to allocate: any family goes (Kubernetes' special case)
    if spec.ip_family_policy == REQUIRE:
        invalid(errs, "spec.ipFamilyPolicy", REQUIRE, "this cluster is not configured for dual-stack services")
    for i, family in enumerate(spec.ip_families):
        if family != CLUSTER_FAMILY and family in FAMILIES:
            invalid(errs, f"spec.ipFamilies[{i}]", family, "not configured on this cluster")


def validate_update(new, old, errs) -> None:
    """The primary family never changes (except to or from ExternalName). (A secondary
    family, which only a selectorless headless Service has, is released by asking for
    SingleStack: carry_over; listing one family under a dual-stack policy completes it
    again in defaults.)"""
    if "ExternalName" in (new.type, old.type):
        return
    if new.ip_families and old.ip_families and new.ip_families[0] != old.ip_families[0]:
        invalid(errs, "spec.ipFamilies[0]", new.ip_families[0], "may not change primary ipFamily")


def carry_over(new, old) -> None:
    """A re-applied manifest that leaves the families or the policy out keeps the stored
    ones; a Service turned ExternalName drops the ones it still carries unchanged; asking
    for SingleStack with the stored two families keeps the primary (Kubernetes' downgrade)."""
    if new.type == "ExternalName":
        if old.type != "ExternalName":
            if list(new.ip_families) == list(old.ip_families):
                del new.ip_families[:]
            if new.HasField("ip_family_policy") and new.ip_family_policy == old.ip_family_policy:
                new.ClearField("ip_family_policy")
        return
    if not new.ip_families:
        new.ip_families.extend(old.ip_families)
    if not new.HasField("ip_family_policy") and old.HasField("ip_family_policy"):
        new.ip_family_policy = old.ip_family_policy
    if new.ip_family_policy == SINGLE and len(new.ip_families) > 1 and \
            list(new.ip_families) == list(old.ip_families):
        del new.ip_families[1:]
