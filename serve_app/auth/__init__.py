"""Authentication, scopes and tenants: who is calling and what they may see.

- :mod:`.tenant`: the tenant scope (a ContextVar) every store filters on.
"""
