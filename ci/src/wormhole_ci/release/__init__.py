"""`release`: one state machine over the gates, and the native steps (the Dagger steps
live in dagger_runtime/release.py)."""
