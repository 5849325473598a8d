"""The /v1 routes keep the API light: answering them imports no torch (validation and
serving run in their own processes)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.test_architecture import HEAVY


def test_v1_routes_import_nothing_heavy(tmp_path: Path) -> None:
    line = json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]})
    code = f"""
import json, sys
from fastapi.testclient import TestClient
from nocodetune.api.app import create_app
from nocodetune.jobs.bootstrap import init_workspace
init_workspace({str(tmp_path / 'ws')!r})
with TestClient(create_app({str(tmp_path / 'ws')!r})) as c:
    up = c.post('/v1/files', files={{'file': ('a.jsonl', ({line!r} + '\\n').encode())}}, data={{'purpose': 'fine-tune'}})
    assert up.status_code == 200, up.text
    for url in ('/v1/files', '/v1/fine_tuning/jobs', '/v1/models', '/v1/files/' + up.json()['id']):
        assert c.get(url).status_code == 200, url
    bad = c.post('/v1/fine_tuning/jobs', json={{'model': 'default', 'training_file': up.json()['id'], 'hyperparameters': {{'n_epochs': 0}}}})
    assert bad.status_code == 400, bad.text
    job = c.post('/v1/fine_tuning/jobs', json={{'model': 'SmolLM2-135M-Instruct', 'training_file': up.json()['id']}})
    assert job.status_code == 200 and job.json()['status'] == 'validating_files', job.text
    assert c.get('/v1/fine_tuning/jobs/' + job.json()['id'] + '/events').status_code == 200
print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
