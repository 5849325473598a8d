"""Records: the one owner of every file NoCodeTune keeps on disk.

Each on-disk record has exactly one module here that reads and writes it; nothing else
parses these files. The registry (`db.py`) is an index rebuilt from them.

| record | file | module |
|---|---|---|
| job config schema | (inside job.yaml / resolved.json) | `records.schema` |
| what a job asked for / its effective config | `jobs/<job>/job.yaml`, `resolved.json` | `records.job` |
| dataset version | `files/<name>/v<N>/meta.json` | `records.dataset` |
| progress, and the events → status rule | `jobs/<job>/logs/events.jsonl` | `records.events` |
| one run of a job (pid, executor, exit) | `jobs/<job>/logs/run-<n>.json` | `records.runs` |
| AI servers | `logs/<kind>/<id>.server.json` | `records.servers` |
| OpenAI file ids, OpenAI job requests | `files/<name>/v<N>/openai/<file-id>.json`, `jobs/<ftjob-id>/openai.json` | `records.openai` |

Records are pydantic models. Files written here carry `format_version`; a file without
one is version 1 (what the first release wrote), so old workspaces keep opening.
This package imports only foundations (errors, workspace) and pydantic.
"""
