"""The pipeline code version; Reviewer.pipeline_version adds the rules and model fingerprints."""

PIPELINE_VERSION = "1.2.7"
