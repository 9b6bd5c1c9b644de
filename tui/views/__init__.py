"""One module per view; each is a widget with `draw(app)` that reads app.state and app.filter."""

VIEWS = ("services", "edges", "routes", "tap", "trace", "lesson")
