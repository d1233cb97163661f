"""The service's routes, one module per resource: ``prompts`` (the /v1 API), ``sagemaker`` (health
checks and the SageMaker contract) and ``page`` (the web page and the API docs)."""
