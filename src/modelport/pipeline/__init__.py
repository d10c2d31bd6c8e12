"""The pipelines over every room: ``prepare`` (convert → … → upload) and the target-aware
``quantize``. The rooms below (``convert``, ``quantize``, ``package``) never import this one,
nor each other upwards: what a lower room needs from a higher one is passed in."""
