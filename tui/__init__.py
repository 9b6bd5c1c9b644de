"""The live-traffic terminal UI (`minimesh tui`): watch the mesh and steer it.

A Textual app over the control plane's API and nothing else, so it works the
same against a local stack and a compose stack. Read it in this order:

    model.py     what the TUI knows: frozen rows (workloads, edges, routes, tap lines, spans)
    client.py    the control plane's JSON turned into the model (the one file to change if shapes move)
    feed.py      the data workers' pure helpers: sampling a fast stream, RPS history, health
    explain.py   a tap line in plain words: route, subset, endpoint, attempts, flags, peer identity
    actions.py   steering: canary weights, fault knobs, lesson steps
    app.py       the App: keys, views, workers; views/ holds one module per view
"""
