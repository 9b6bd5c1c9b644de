"""The inbound journey: a request arriving for the app, checked before it is let in.

stack.py assembles its layers: peer authentication, JWT, authorization.
"""
