"""The dashboard's pages, one module each: PATH, NAME, ORDER, `layout(**query)` and
`register_callbacks(app, data, metrics)`, layout and callbacks only. They take their data from
the data modules (dashboard/*_data.py), their shared pieces from dashboard.components, and
never import each other. dashboard.app registers them; the audit page, only when the dashboard
has the audit trail's files, takes them instead: `register_callbacks(app, trail)`."""
