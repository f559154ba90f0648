"""Kept for scripts written before _harness.py: the environment record lives there now."""

from _harness import REPO, cpu_model, dist_versions, git, git_state

__all__ = ["REPO", "cpu_model", "dist_versions", "git", "git_state"]
