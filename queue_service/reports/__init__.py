"""Reports against the service standards and the SKM/IKM: built from the store's figures
(`build`), rendered as JSON, CSV or printable HTML (`render`), from the command line
(`cli`) or the API (`web/reports_api.py`). See docs/reports.md."""
