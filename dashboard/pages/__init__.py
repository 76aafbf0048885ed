"""The dashboard's pages, one module each: PATH, NAME, ORDER, `layout(**query)` and, when the
page has callbacks, `register_callbacks(app, data)`. dashboard.app registers them."""
