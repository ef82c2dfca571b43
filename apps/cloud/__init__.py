"""One module per outside system, each an interface with a local implementation and a Google Cloud one,
chosen by settings (PII_SCANNER, WAREHOUSE, JOB_BACKEND, …)."""
