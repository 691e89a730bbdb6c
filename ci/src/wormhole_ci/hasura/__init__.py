"""Hasura metadata: loading (with `!include`), the database schema it is checked against, and the check."""
