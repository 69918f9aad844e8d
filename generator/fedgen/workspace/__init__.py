"""The server's workspace bucket: what `fedgen workspace push` uploads and where (see `fedgen.workspace.push`)."""

from fedgen.workspace.push import PushAction, PushResult, plan_push, push, workspace_layout

__all__ = ["PushAction", "PushResult", "plan_push", "push", "workspace_layout"]
