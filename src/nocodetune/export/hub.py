"""`hub`: push the job's merged model folder to a Hugging Face Hub repository.

Opt-in twice: NoCodeTune never sends anything off the machine unless the user sets
NOCODETUNE_ALLOW_HUB_UPLOADS=1, and the push needs the user's own token (HF_TOKEN, or
`huggingface-cli login`). The folder pushed is the `merged` export (weights, tokenizer,
chat template, generation config, weights record, model card); it stays on disk as the
record of what was sent. Everything but the upload itself is the merged export, and the
upload is one function (`upload_folder`), which tests replace: they never reach the network.
"""

from __future__ import annotations

from pathlib import Path

from nocodetune.errors import NocodetuneError
from nocodetune.export.common import ExportResult, Progress, no_progress
from nocodetune.export.merged import export_merged
from nocodetune.export.preflight import check_hub, hub_token
from nocodetune.records.exports import ExportRequest
from nocodetune.workspace import JobPaths


def upload_folder(folder: Path, repo: str, *, token: str, private: bool) -> str:
    """Create `repo` (if needed) and upload `folder` to it; return the commit URL.

    The process runs with the hub switched off (settings.apply_network_policy); the user
    allowed this one upload, so hub access is switched on for its duration only.
    """
    from huggingface_hub import HfApi, constants

    api = HfApi(token=token)
    offline = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = False
    try:
        api.create_repo(repo, private=private, exist_ok=True, repo_type="model")
        commit = api.upload_folder(folder_path=str(folder), repo_id=repo, repo_type="model", commit_message="Upload model exported by NoCodeTune")
    finally:
        constants.HF_HUB_OFFLINE = offline
    return str(getattr(commit, "commit_url", commit))


def export_hub(paths: JobPaths, stage: Path, request: ExportRequest, progress: Progress = no_progress) -> ExportResult:
    """The folder that will be pushed (the merged model); `push` sends it once it is complete."""
    check_hub(request)
    result = export_merged(paths, stage, progress)
    result.details["repo"] = str(request.repo)
    return result


def push(folder: Path, request: ExportRequest, progress: Progress = no_progress) -> str:
    """Upload a finished export folder; the URL of the commit."""
    check_hub(request)
    token = hub_token()
    if not token:  # check_hub has refused already; kept for the type checker
        raise NocodetuneError("no Hugging Face token", field="format")
    progress("uploading", 0.96, f"pushing {folder} to {request.repo} ({'private' if request.private else 'public'})")
    try:
        return upload_folder(folder, str(request.repo), token=token, private=request.private)
    except NocodetuneError:
        raise
    except Exception as exc:  # the hub's errors (auth, network, quota) are the user's to fix
        raise NocodetuneError(f"pushing to {request.repo} failed: {exc}", field="repo", hint="the exported folder is kept; check the token's write access and try again") from exc
