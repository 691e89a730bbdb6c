"""One writer per report format: SARIF, Markdown, JSON (and the terminal table in the CLI)."""
