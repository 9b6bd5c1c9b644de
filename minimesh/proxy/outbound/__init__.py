"""The outbound journey: a request the app sends out, from route to the wire.

stack.py assembles its layers, one module each (route, split, fault, mirror,
timeout, retry, balancer, breaker, outlier, secure naming, connect); read it first.
"""
