"""Task YAMLs, installed as ``siuo_task.yaml_tasks`` (see siuo_task/paths.py)."""
