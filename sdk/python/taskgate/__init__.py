"""Taskgate API client, generated from proto/ by sdk/python/generate.sh."""
