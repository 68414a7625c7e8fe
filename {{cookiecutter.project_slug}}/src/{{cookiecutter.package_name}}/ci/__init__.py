"""CI/CD helpers run by the GitLab pipeline (``.gitlab-ci.yml``): the merge-request report, the
promotion gate, the security gate, the fallback report poster and the GitOps release hand-off.

They use only the standard library and PyYAML (plus ``vl-convert-python`` for report images), so
every job can run them with ``uv run`` and the unit tests drive them against local stand-ins.
"""
