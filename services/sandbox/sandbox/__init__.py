"""In-memory HTTP simulators of the GitHub gists API and the Pipedrive API v2.

Entry points: `create_github_app`, `create_pipedrive_app`, `run_sandbox` (both on free
ports, in-process) and `python -m sandbox`.
"""

from sandbox.config import FaultConfig, GitHubConfig, GitHubLimits, PipedriveConfig, PipedriveLimits
from sandbox.github import create_github_app
from sandbox.github_state import GitHubState
from sandbox.pipedrive import create_pipedrive_app
from sandbox.pipedrive_state import PipedriveState
from sandbox.testing import FakeClock, Sandbox, run_sandbox

__all__ = [
    "FakeClock",
    "FaultConfig",
    "GitHubConfig",
    "GitHubLimits",
    "GitHubState",
    "PipedriveConfig",
    "PipedriveLimits",
    "PipedriveState",
    "Sandbox",
    "create_github_app",
    "create_pipedrive_app",
    "run_sandbox",
]
