"""REST API (DRF): one view per operation, explicit serializers, documented at /api/schema/."""
