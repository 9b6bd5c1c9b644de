"""Manifests minimesh must refuse, each with the field and line the error names
(see cases.py for what `# <-` and `crd` mean)."""

from dataclasses import dataclass

from .cases import DR, VS

@dataclass(frozen=True)
class Rejected:
    text: str
    field: str
    message: str  # a fragment of the one-line message
    crd: bool | None  # does Istio's CRD schema accept it? None: not visible once parsed

    @property
    def line(self) -> int:
        return next(i for i, line in enumerate(self.text.splitlines(), 1) if "# <-" in line)


def _vs(route_yaml: str) -> str:
    return VS + route_yaml


_PA = """\
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: catalog}
spec:
"""

_AP = _PA.replace("PeerAuthentication", "AuthorizationPolicy")
_AP_RULES = _AP + "  rules:\n"
_RA = _PA.replace("PeerAuthentication", "RequestAuthentication")
_RA_RULES = _RA + "  jwtRules:\n"

REJECTED = {
    "port-level-mtls-other-port": Rejected(_PA + """\
  selector: {matchLabels: {app: catalog}}
  portLevelMtls:
    9090: {mode: DISABLE}  # <-
""", "spec.portLevelMtls.9090", "a minimesh workload serves one port, 8080", crd=True),
    "port-level-mtls-without-selector": Rejected(_PA + """\
  mtls: {mode: STRICT}
  portLevelMtls:  # <-
    8080: {mode: DISABLE}
""", "spec.portLevelMtls", "needs a selector", crd=True),
    "redirect-beside-route": Rejected(_vs("""\
  - redirect: {uri: /new}
    route:  # <-
    - destination: {host: pricing}
"""), "spec.http[0].route", "cannot sit beside 'redirect'", crd=True),
    "redirect-uri-and-prefix-rewrite": Rejected(_vs("""\
  - redirect:
      uri: /a
      prefixRewrite: /b  # <-
"""), "spec.http[0].redirect.prefixRewrite", "not both", crd=True),
    "rewrite-uri-and-regex": Rejected(_vs("""\
  - rewrite:
      uri: /a
      uriRegexRewrite: {match: "^/b", rewrite: /c}  # <-
    route:
    - destination: {host: pricing}
"""), "spec.http[0].rewrite.uriRegexRewrite", "not both", crd=True),
    # A request set/add of Host is Istio's authority rewrite (accepted); removing it, or setting
    # it twice, Istio's validation refuses (ValidateHTTPHeaderOperationName, validateAuthorityRewrite).
    "headers-remove-host": Rejected(_vs("""\
  - headers:
      request:
        remove:
        - host  # <-
    route:
    - destination: {host: pricing}
"""), "spec.http[0].headers.request.remove[0]", "Istio refuses Host outside a request's set/add", crd=True),
    "headers-response-set-host": Rejected(_vs("""\
  - headers:
      response:
        set:
          host: other  # <-
    route:
    - destination: {host: pricing}
"""), "spec.http[0].headers.response.set.host", "Istio refuses Host outside a request's set/add", crd=True),
    "headers-set-and-add-host": Rejected(_vs("""\
  - headers:
      request:
        set: {host: one}
        add:
          ":authority": two  # <-
    route:
    - destination: {host: pricing}
"""), "spec.http[0].headers.request.add.:authority", "Istio refuses setting it twice", crd=True),
    "headers-host-and-rewrite-authority": Rejected(_vs("""\
  - headers:
      request:
        set: {host: one}
    rewrite:
      authority: two  # <-
    route:
    - destination: {host: pricing}
"""), "spec.http[0].rewrite.authority", "the authority is rewritten twice", crd=True),
    "headers-set-path": Rejected(_vs("""\
  - headers:
      request:
        set:
          ":path": /x  # <-
    route:
    - destination: {host: pricing}
"""), "spec.http[0].headers.request.set.:path", "Istio refuses pseudo-headers", crd=True),
    "query-param-presence": Rejected(_vs("""\
  - match:
    - queryParams:
        beta: {}  # <-
    route:
    - destination: {host: pricing}
"""), "spec.http[0].match[0].queryParams.beta", "give exact, prefix or regex", crd=True),
    "match-scheme": Rejected(_vs("""\
  - match:
    - scheme: {exact: https}  # <-
    route:
    - destination: {host: pricing}
"""), "spec.http[0].match[0].scheme", "Istio would match the request's scheme", crd=True),
    "unknown-field-typo": Rejected(_vs("""\
  - route:
    - destination: {host: pricing}
    retriez: {attempts: 3}  # <-
"""), "spec.http[0].retriez", "unknown field 'retriez'; did you mean 'retries'?", crd=False),
    "istio-field-not-supported": Rejected(_vs("""\
  - route:
    - destination: {host: pricing}
    delegate: {name: pricing-routes}  # <-
"""), "spec.http[0].delegate", "not supported by minimesh (supported: name, match", crd=True),
    "negative-attempts": Rejected(_vs("""\
  - route:
    - destination: {host: pricing}
    retries:
      attempts: -1  # <-
"""), "spec.http[0].retries.attempts", "at least 0", crd=True),
    "weights-all-zero": Rejected(_vs("""\
  - route:  # <-
    - destination: {host: pricing, subset: v1}
      weight: 0
    - destination: {host: pricing, subset: v2}
      weight: 0
"""), "spec.http[0].route", "every weight is 0", crd=True),
    "weight-negative": Rejected(_vs("""\
  - route:
    - destination: {host: pricing}
      weight: -5  # <-
"""), "spec.http[0].route[0].weight", "between 0 and 2147483647", crd=True),
    "weight-not-a-number": Rejected(_vs("""\
  - route:
    - destination: {host: pricing}
      weight: "50"  # <-
"""), "spec.http[0].route[0].weight", "expected a whole number", crd=False),
    "bad-duration": Rejected(_vs("""\
  - route:
    - destination: {host: pricing}
    timeout: 5 seconds  # <-
"""), "spec.http[0].timeout", "invalid duration", crd=False),
    "zero-duration": Rejected(_vs("""\
  - route:
    - destination: {host: pricing}
    timeout: 0s  # <-
"""), "spec.http[0].timeout", "at least 1ms", crd=False),
    "bad-regex": Rejected(_vs("""\
  - match:
    - uri: {regex: "/items/(["}  # <-
    route:
    - destination: {host: pricing}
"""), "spec.http[0].match[0].uri.regex", "invalid regex", crd=True),
    "non-re2-regex": Rejected(_vs("""\
  - match:
    - uri: {regex: "/(?!admin).*"}  # <-
    route:
    - destination: {host: pricing}
"""), "spec.http[0].match[0].uri.regex", "RE2", crd=True),
    "two-string-match-kinds": Rejected(_vs("""\
  - match:
    - uri: {exact: /a, prefix: /b}  # <-
    route:
    - destination: {host: pricing}
"""), "spec.http[0].match[0].uri", "exactly one of exact, prefix or regex", crd=False),
    "percentage-over-100": Rejected(_vs("""\
  - route:
    - destination: {host: pricing}
    fault:
      abort:
        httpStatus: 503
        percentage: {value: 150}  # <-
"""), "spec.http[0].fault.abort.percentage.value", "between 0 and 100", crd=True),
    "missing-route": Rejected(_vs("""\
  - name: nowhere  # <-
    timeout: 1s
"""), "spec.http[0].route", "'route' is required", crd=True),
    "missing-destination-host": Rejected(_vs("""\
  - route:
    - destination: {subset: v1}  # <-
"""), "spec.http[0].route[0].destination.host", "'host' is required", crd=False),
    "unknown-retry-condition": Rejected(_vs("""\
  - route:
    - destination: {host: pricing}
    retries: {attempts: 2, retryOn: "5xx,flaky"}  # <-
"""), "spec.http[0].retries.retryOn", "unknown retry condition 'flaky'", crd=True),
    "missing-hosts": Rejected("""\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: x}
spec:  # <-
  http: []
""", "spec.hosts", "'hosts' is required", crd=True),
    "missing-name": Rejected("""\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:  # <-
  namespace: default
spec: {hosts: [pricing]}
""", "metadata.name", "'name' is required", crd=False),
    "unknown-kind": Rejected("""\
apiVersion: networking.istio.io/v1
kind: VirtualServce  # <-
metadata: {name: x}
spec: {hosts: [pricing]}
""", "kind", "'VirtualServce' is not an Istio kind", crd=False),
    "istio-kind-not-supported": Rejected("""\
apiVersion: networking.istio.io/v1alpha3
kind: EnvoyFilter  # <-
metadata: {name: x}
spec: {workloadSelector: {labels: {istio: ingressgateway}}}
""", "kind", "'EnvoyFilter' is not supported by minimesh", crd=True),
    "wrong-api-version": Rejected("""\
apiVersion: networking.istio.io/v2  # <-
kind: VirtualService
metadata: {name: x}
spec: {hosts: [pricing]}
""", "apiVersion", "use networking.istio.io/v1", crd=False),
    "security-kind-networking-group": Rejected("""\
apiVersion: networking.istio.io/v1  # <-
kind: PeerAuthentication
metadata: {name: x}
spec: {mtls: {mode: STRICT}}
""", "apiVersion", "use security.istio.io/v1", crd=False),
    "lb-unknown-enum": Rejected(DR + """\
  trafficPolicy:
    loadBalancer: {simple: FOO}  # <-
""", "spec.trafficPolicy.loadBalancer.simple", "unknown value 'FOO'; expected one of: ROUND_ROBIN", crd=False),
    "lb-istio-only-enum": Rejected(DR + """\
  trafficPolicy:
    loadBalancer: {simple: PASSTHROUGH}  # <-
""", "spec.trafficPolicy.loadBalancer.simple", "not supported by minimesh", crd=True),
    "lb-locality": Rejected(DR + """\
  trafficPolicy:
    loadBalancer:
      simple: ROUND_ROBIN
      localityLbSetting: {enabled: true}  # <-
""", "spec.trafficPolicy.loadBalancer.localityLbSetting", "one locality", crd=True),
    "lb-maglev": Rejected(DR + """\
  trafficPolicy:
    loadBalancer:
      consistentHash:
        httpHeaderName: x-user
        maglev: {tableSize: 65537}  # <-
""", "spec.trafficPolicy.loadBalancer.consistentHash.maglev", "ring hash only", crd=True),
    "pool-max-concurrent-streams": Rejected(DR + """\
  trafficPolicy:
    connectionPool:
      http: {maxConcurrentStreams: 10}  # <-
""", "spec.trafficPolicy.connectionPool.http.maxConcurrentStreams", "HTTP/1.1", crd=True),
    "outlier-http-error-codes": Rejected(DR + """\
  trafficPolicy:
    outlierDetection:
      outlierDetectionHttpErrorCodes: [500]  # <-
""", "spec.trafficPolicy.outlierDetection.outlierDetectionHttpErrorCodes", "counts 5xx", crd=True),
    "port-level-other-port": Rejected(DR + """\
  trafficPolicy:
    portLevelSettings:
    - port: {number: 9080}  # <-
      connectionPool: {tcp: {maxConnections: 1}}
""", "spec.trafficPolicy.portLevelSettings[0].port.number", "one port, 80", crd=True),
    "retry-budget-interval": Rejected(DR + """\
  trafficPolicy:
    retryBudget: {percent: 20, budgetInterval: 10s}  # <-
""", "spec.trafficPolicy.retryBudget.budgetInterval", "no interval", crd=True),
    "subset-policy-tls": Rejected(DR + """\
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      tls:
        mode: SIMPLE
        credentialName: pricing-ca  # <-
""", "spec.subsets[0].trafficPolicy.tls.credentialName", "not supported by minimesh", crd=True),
    "duplicate-subset": Rejected(DR + """\
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v1  # <-
    labels: {version: v2}
""", "spec.subsets[1].name", "defined twice", crd=True),
    "outlier-bad-interval": Rejected(DR + """\
  trafficPolicy:
    outlierDetection:
      interval: soon  # <-
""", "spec.trafficPolicy.outlierDetection.interval", "invalid duration", crd=False),
    "max-ejection-over-100": Rejected(DR + """\
  trafficPolicy:
    outlierDetection:
      maxEjectionPercent: 120  # <-
""", "spec.trafficPolicy.outlierDetection.maxEjectionPercent", "between 0 and 100", crd=True),
    "mtls-bad-mode": Rejected(_PA + """\
  mtls: {mode: strict}  # <-
""", "spec.mtls.mode", "unknown value 'strict'; expected one of: STRICT", crd=False),
    "authz-custom-action": Rejected(_AP + """\
  action: CUSTOM  # <-
""", "spec.action", "action CUSTOM is not supported: on Istio it hands the decision", crd=True),
    "authz-service-accounts": Rejected(_AP_RULES + """\
  - from:
    - source:
        serviceAccounts: [default/web]  # <-
""", "spec.rules[0].from[0].source.serviceAccounts", "'serviceAccounts' is not supported", crd=True),
    "authz-target-ref": Rejected(_AP + """\
  targetRef: {kind: Gateway, group: gateway.networking.k8s.io, name: gw}  # <-
""", "spec.targetRef", "attaches the policy to a Gateway API Gateway", crd=True),
    "authz-provider": Rejected(_AP + """\
  action: DENY
  provider: {name: opa}  # <-
""", "spec.provider", "belongs to the CUSTOM action", crd=True),
    "authz-sni": Rejected(_AP_RULES + """\
  - when:
    - key: connection.sni  # <-
      values: ["*.example.com"]
""", "spec.rules[0].when[0].key", "do not send SNI", crd=True),
    "authz-unknown-key": Rejected(_AP_RULES + """\
  - when:
    - key: request.header[x-user]  # <-
      values: [alice]
""", "spec.rules[0].when[0].key", "unknown condition key", crd=True),
    "authz-when-no-values": Rejected(_AP_RULES + """\
  - when:
    - key: request.headers[x-user]  # <-
""", "spec.rules[0].when[0]", "needs values or notValues", crd=True),
    "authz-empty-source": Rejected(_AP_RULES + """\
  - from:
    - source: {}  # <-
""", "spec.rules[0].from[0].source", "must not be empty", crd=True),
    "authz-bad-ip": Rejected(_AP_RULES + """\
  - from:
    - source:
        ipBlocks:
        - 10.0.0.300/8  # <-
""", "spec.rules[0].from[0].source.ipBlocks[0]", "not an IP address or CIDR block", crd=True),
    "authz-bad-port": Rejected(_AP_RULES + """\
  - to:
    - operation:
        ports:
        - http  # <-
""", "spec.rules[0].to[0].operation.ports[0]", "not a port number", crd=True),
    "authz-dry-run-value": Rejected("""\
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: x
  annotations:
    istio.io/dry-run: "yes"  # <-
spec: {}
""", "metadata.annotations.istio.io/dry-run", "must be \"true\" or \"false\"", crd=True),
    "ra-no-keys": Rejected(_RA_RULES + """\
  - issuer: https://issuer.example  # <-
""", "spec.jwtRules[0]", "give jwksUri or jwks", crd=True),
    "ra-bad-jwks": Rejected(_RA_RULES + """\
  - issuer: https://issuer.example
    jwks: '{"keys": [{"kty": "nope"}]}'  # <-
""", "spec.jwtRules[0].jwks", "not a usable JSON Web Key Set", crd=True),
    "ra-target-refs": Rejected(_RA + """\
  targetRefs:  # <-
  - {kind: Gateway, group: gateway.networking.k8s.io, name: gw}
""", "spec.targetRefs", "attaches the policy", crd=True),
    "selector-wildcard": Rejected(_PA + """\
  selector:
    matchLabels:
      app: "pay*"  # <-
""", "spec.selector.matchLabels.app", "must not contain '*'", crd=False),
    "duplicate-key": Rejected(_vs("""\
  - route:
    - destination: {host: pricing}
    timeout: 1s
    timeout: 2s  # <-
"""), "spec.http[0].timeout", "duplicate key 'timeout'", crd=None),
}
