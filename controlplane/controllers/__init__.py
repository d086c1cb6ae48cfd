"""Leader-only controllers. Each has a pure planner (*_plan.py, table-tested) and a loop
that applies the plan through the API: replicaset, deployment, nodelifecycle, gc.
manager.py wires them to shared informers; controlplane/leader.py starts and stops
them with Raft leadership."""
