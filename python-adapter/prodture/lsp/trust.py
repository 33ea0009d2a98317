"""Whether the quick replay may run the folder's code: the editor's word on workspace trust.

A replay imports the handler's modules from the folder, so it runs the folder's code. The
editor says whether the user trusts the folder (VS Code's Workspace Trust): with
``initializationOptions.workspaceTrusted`` and, when that changes, the notification
``prodture/setWorkspaceTrust {trusted}`` (see ``protocol/lsp.md``). An editor that does not say
is taken as untrusted for replays unless its configuration asks for them
(``initializationOptions.quickReplay: true``). Reading traces — hovers, hints, lenses, the
trace summary — never runs the folder's code and does not depend on trust.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from lsprotocol import types

log = logging.getLogger("prodture.lsp")

SET_WORKSPACE_TRUST = "prodture/setWorkspaceTrust"

#: How the user trusts the folder in VS Code (the command palette's name for it).
VSCODE_HOW_TO_TRUST = "run 'Workspaces: Manage Workspace Trust' and choose Trust"


@dataclasses.dataclass(slots=True)
class ReplayTrust:
    """The client's trust state and the quick-replay configuration, and what they allow."""

    #: What the client said: True / False, None while it has not said.
    trusted: bool | None = None
    #: ``initializationOptions.quickReplay``: None when not given.
    quick_replay: bool | None = None

    def configure(self, options: dict[str, Any]) -> None:
        """Read ``workspaceTrusted`` and ``quickReplay`` from ``initializationOptions``."""
        if isinstance(options.get("workspaceTrusted"), bool):
            self.trusted = options["workspaceTrusted"]
        if isinstance(options.get("quickReplay"), bool):
            self.quick_replay = options["quickReplay"]

    @property
    def enabled(self) -> bool:
        """Quick replay is wanted at all (``quickReplay: false`` turns it off without a word)."""
        return self.quick_replay is not False

    @property
    def allows_replay(self) -> bool:
        if not self.enabled:
            return False
        if self.trusted is None:
            return self.quick_replay is True  # the editor's configuration vouches for the folder
        return self.trusted

    def refusal(self) -> str | None:
        """Why a wanted replay does not run, in one line with the way to allow it; else None."""
        if not self.enabled or self.allows_replay:
            return None
        if self.trusted is False:
            return (
                "this folder is not trusted and a replay runs its code; "
                f"to trust it, {VSCODE_HOW_TO_TRUST}"
            )
        return (
            "the editor did not say this folder is trusted and a replay runs its code; "
            "to allow it, set initializationOptions.workspaceTrusted (or quickReplay) to true"
        )


def _trusted_param(params: Any) -> bool | None:
    value = params.get("trusted") if isinstance(params, dict) else getattr(params, "trusted", None)
    return value if isinstance(value, bool) else None


def register(server: Any, on_change: Any) -> None:
    """Serves ``prodture/setWorkspaceTrust``; ``on_change(ls)`` runs after the state changed."""

    @server.feature(SET_WORKSPACE_TRUST)
    def set_workspace_trust(ls: Any, params: Any) -> None:
        trusted = _trusted_param(params)
        if trusted is None:
            ls.window_log_message(
                types.LogMessageParams(
                    type=types.MessageType.Warning,
                    message=f"prodture: {SET_WORKSPACE_TRUST} needs {{trusted: boolean}}; ignored",
                )
            )
            return
        if trusted == ls.replay_trust.trusted:
            return
        ls.replay_trust.trusted = trusted
        log.info("workspace trusted: %s", trusted)
        on_change(ls)
