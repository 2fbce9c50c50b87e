"""Tooling around the runtime: the `recsys` CLI, the local runner, the synthetic generator and offline evaluation.

None of it ships in the Lambda layer (layers/recsys holds only what the functions import); it is installed with the
`tools` extra (`pip install -e '.[tools]'`, which `make venv` does). It may import `recsys`; `recsys` never imports it
(tests/test_architecture.py).
"""
