"""Manufacturing models: master records, batches, execution (added with the batch issue)."""
