"""Workload identity: the mesh CA, SPIFFE identities, join tokens and certificates.

    spiffe.py    SPIFFE IDs: spiffe://cluster.local/ns/default/sa/<service>
    ca.py        the root CA the control plane keeps, and how it signs X.509-SVIDs
    tokens.py    join tokens: how a sidecar proves which service it speaks for
    workload.py  the sidecar's side: its own key, a CSR, the credentials it holds
"""
