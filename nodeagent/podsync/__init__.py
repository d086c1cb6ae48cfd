"""The pod sync loop: pods bound to this node -> containers in the node's Docker engine.

plan.py (pure planner), status.py (pure status), env.py (environment), volumes.py
(the pod's files on the node), apply.py (actions -> engine), syncer.py (informer,
work queue, workers, resync).
"""
