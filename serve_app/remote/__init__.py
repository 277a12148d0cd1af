"""The paid APIs in the service: the remote stage (deployments/remote.py hosts it), routing and the cost ledger."""
