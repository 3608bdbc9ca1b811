from tests.serve.conftest import planted  # noqa: F401 - the planted catalog and its models
