"""Manifests minimesh must accept, shared by the config tests; the ones it must
refuse are in rejected_cases.py.

A rejected case marks the line the error must point at with `# <-`, so the
expected line number cannot drift from the text. `crd` says what Istio's CRD
schema makes of the same manifest: True when it accepts it (minimesh refuses
a real feature it does not implement, or a rule Istio's admission webhook
enforces beyond the schema, like weights adding up to 100), False when the
schema refuses it too (a typo, a bad value) — tests/unit/config/test_istio_contract.py holds
minimesh to that.
"""

VS = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: pricing
spec:
  hosts: [pricing]
  http:
"""

DR = """\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: pricing
spec:
  host: pricing
"""

ACCEPTED = {
    "vs-route-fields": VS + """\
  - name: shop
    match:
    - uri: {prefix: /Shop/}
      ignoreUriCase: true
      queryParams: {beta: {exact: "on"}}
      headers: {x-canary: {}}
      withoutHeaders: {x-user: {exact: alice}}
      sourceLabels: {app: web}
      port: 80
      authority: {prefix: pricing}
    rewrite: {uri: /, authority: backend}
    headers:
      request: {set: {x-tier: gold}, add: {x-trail: mesh}, remove: [x-secret]}
      response: {set: {x-served: mesh}}
    corsPolicy:
      allowOrigins: [{exact: "https://shop.example"}, {regex: "https://.*[.]test"}]
      allowMethods: [GET, POST]
      allowHeaders: [x-cart]
      exposeHeaders: [x-total]
      maxAge: 24h
      allowCredentials: true
    route:
    - destination: {host: pricing, subset: v1, port: {number: 80}}
      weight: 1
      headers: {request: {set: {x-dest: v1}}}
    - destination: {host: pricing, subset: v2}
      weight: 3
  - match: [{uri: {exact: /old}}]
    redirect: {uri: /new, authority: shop.example, scheme: https, port: 8443, redirectCode: 308}
  - match: [{uri: {prefix: /legacy/}}]
    redirect: {prefixRewrite: /v2/, derivePort: FROM_PROTOCOL_DEFAULT}
  - match: [{uri: {exact: /teapot}}]
    directResponse: {status: 418, body: {string: short and stout}}
  - rewrite: {uriRegexRewrite: {match: "^/v1/(.*)$", rewrite: "/api/\\\\1"}}
    route:
    - destination: {host: pricing}
""",
    "vs-minimal": VS + """\
  - route:
    - destination: {host: pricing}
""",
    "vs-everything": """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: pricing
  namespace: default
  labels: {app: pricing}
spec:
  hosts:
  - pricing.default.svc.cluster.local
  http:
  - name: canary-by-header
    match:
    - name: tester
      headers:
        x-canary: {exact: "yes"}
        User-Agent: {regex: ".*Firefox.*"}
      uri: {prefix: /prices}
      method: {exact: GET}
    - uri: {regex: "/prices/[0-9]+"}
    route:
    - destination: {host: pricing, subset: v2}
  - name: split
    route:
    - destination: {host: pricing, subset: v1}
      weight: 90
    - destination: {host: pricing, subset: v2}
      weight: 10
    timeout: 2s
    retries:
      attempts: 3
      perTryTimeout: 500ms
      retryOn: 5xx,connect-failure,503
    fault:
      delay:
        fixedDelay: 1.5s
        percentage: {value: 10}
      abort:
        httpStatus: 503
        percentage: {value: 0.5}
    mirror: {host: pricing, subset: v2}
    mirrorPercentage: {value: 25.5}
""",
    "vs-v1beta1": VS.replace("networking.istio.io/v1", "networking.istio.io/v1beta1") + """\
  - route:
    - destination: {host: pricing}
""",
    "vs-v1alpha3": VS.replace("networking.istio.io/v1", "networking.istio.io/v1alpha3") + """\
  - route:
    - destination: {host: pricing}
""",
    "dr-everything": DR + """\
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    connectionPool:
      http: {http1MaxPendingRequests: 10, maxRequestsPerConnection: 1, maxRetries: 3}
    outlierDetection:
      consecutive5xxErrors: 3
      interval: 5s
      baseEjectionTime: 1m
      maxEjectionPercent: 50
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      loadBalancer: {simple: RANDOM}
""",
    "dr-outlier-defaults": DR + """\
  trafficPolicy:
    outlierDetection: {}
""",
    "pa-strict": """\
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default}
spec:
  mtls: {mode: STRICT}
""",
    "pa-selector-v1beta1": """\
apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata: {name: payments}
spec:
  selector:
    matchLabels: {app: payments}
  mtls: {mode: PERMISSIVE}
""",
    "authz-allow": """\
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: payments-from-web}
spec:
  selector:
    matchLabels: {app: payments}
  action: ALLOW
  rules:
  - from:
    - source: {principals: ["cluster.local/ns/default/sa/web"]}
    to:
    - operation: {methods: [POST], paths: ["/pay", "/admin/*"]}
""",
    "authz-deny-all": """\
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-all}
spec: {}
""",
    "authz-every-field": """\
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: every-field
  namespace: istio-system
  annotations: {istio.io/dry-run: "true"}
spec:
  selector:
    matchLabels: {app: payments, version: v1}
  action: DENY
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/default/sa/*"]
        notPrincipals: ["*/sa/catalog"]
        namespaces: [default]
        notNamespaces: [kube-*]
        ipBlocks: [127.0.0.0/8, "::1"]
        notIpBlocks: [10.0.0.1]
        remoteIpBlocks: [0.0.0.0/0]
        notRemoteIpBlocks: [192.168.0.0/16]
        requestPrincipals: ["https://issuer.example/*"]
        notRequestPrincipals: ["*/robot"]
    to:
    - operation:
        hosts: ["payments*"]
        notHosts: [evil.example]
        ports: ["8080"]
        notPorts: ["9090"]
        methods: [POST]
        notMethods: [GET]
        paths: ["/pay*"]
        notPaths: ["*/debug"]
    when:
    - {key: "request.headers[x-user]", values: [alice], notValues: [mallory]}
    - {key: source.ip, values: [127.0.0.1]}
    - {key: remote.ip, notValues: [10.0.0.0/8]}
    - {key: source.namespace, values: [default]}
    - {key: source.principal, values: ["*"]}
    - {key: request.auth.principal, values: ["*"]}
    - {key: request.auth.audiences, values: [shop]}
    - {key: request.auth.presenter, values: [web-app]}
    - {key: "request.auth.claims[groups]", values: [buyers]}
    - {key: "request.auth.claims[address][country]", values: [NL]}
    - {key: destination.ip, values: [127.0.0.1]}
    - {key: destination.port, values: ["8080"]}
""",
    "authz-allow-all": """\
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-all}
spec:
  action: AUDIT
  rules:
  - {}
""",
    "ra-every-field": """\
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt}
spec:
  selector:
    matchLabels: {istio: ingressgateway}
  jwtRules:
  - issuer: https://issuer.example
    audiences: [shop]
    jwksUri: https://issuer.example/jwks.json
    fromHeaders:
    - {name: x-token, prefix: "Token "}
    fromParams: [token]
    fromCookies: [session]
    forwardOriginalToken: true
    outputPayloadToHeader: x-jwt-payload
    outputClaimToHeaders:
    - {header: x-user, claim: sub}
    spaceDelimitedClaims: [roles]
    timeout: 2s
""",
}
