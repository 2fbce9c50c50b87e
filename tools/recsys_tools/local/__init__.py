"""Running the real state machine locally: moto's Step Functions interpreter + the real handlers in-process."""
