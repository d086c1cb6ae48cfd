"""Event: what happened to an object, recorded by the component that saw it."""

from skiff.api import objects_pb2 as pb
from skiff.api.kinds.registry import Kind, register

EVENT = register(Kind("Event", "v1", "events", ("ev",), True, pb.Event, "event", False))
