"""The training runtime. Runs in its own process: `python -m nocodetune.training JOB_DIR`.

Reads only the job folder (and the model it names); never imports the API, DB or CLI.
"""
