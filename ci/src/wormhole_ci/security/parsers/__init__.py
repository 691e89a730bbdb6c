"""One parser per scanner: raw output (JSON text, exit code, stderr) in, an Outcome out."""
