"""Configuration kinds: ConfigMap and Secret."""

from skiff.api import objects_pb2 as pb
from skiff.api.kinds.registry import Kind, register

CONFIG_MAP = register(Kind("ConfigMap", "v1", "configmaps", ("cm",), True, pb.ConfigMap, "config_map", False))

SECRET = register(Kind("Secret", "v1", "secrets", (), True, pb.Secret, "secret", False))
