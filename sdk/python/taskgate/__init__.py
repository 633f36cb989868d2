"""Taskgate API client: taskgate.v1 is generated from proto/ by sdk/python/generate.sh; taskgate.client is not."""
