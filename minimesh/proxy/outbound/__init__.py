"""The outbound journey: a request the app sends out, from route to the wire.

stack.py assembles its layers, one module each (route, cors, fault, redirect
— redirect and directResponse —, rewrite, mirror, split, header_ops, timeout,
retry, balancer, breaker, outlier, secure naming, connect); read it first.
"""
