"""Workload identity: the mesh CA, SPIFFE identities, join tokens and certificates.

    spiffe.py    SPIFFE IDs: spiffe://cluster.local/ns/default/sa/<service>
    ca.py        the root CA the control plane keeps, and how it signs X.509-SVIDs
    tokens.py    join tokens: how a sidecar proves which service it speaks for
    svid.py      reading an X.509-SVID's SPIFFE ID with `cryptography` (CA, control plane)
    workload.py  the sidecar's side: its own key, a CSR, the certificate's facts; run as
                 a program, the key maker a sidecar starts per certificate
    csr.py       the sidecar's end of the key maker (a child process: the proxy never loads `cryptography`)
    credentials.py  what the sidecar holds: key, certificate, bundle and their facts (plain data)
    control_tls.py  the client's TLS to the control plane (stdlib `ssl` only)
"""
