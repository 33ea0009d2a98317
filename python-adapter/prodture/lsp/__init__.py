"""The prodture language server: what production did, beside the code (``python -m prodture.lsp``).

One LSP feature per module, as in pygls's examples:

* :mod:`.active_traces` — the set of active traces (``initializationOptions``,
  ``prodture/setActiveTraces``) and trace folders;
* :mod:`.index` — a compact per-trace index of recorded calls by call site;
* :mod:`.source_map` — recorded call sites → current lines (by handler, effect type and order);
* :mod:`.hover`, :mod:`.inlay_hints`, :mod:`.code_lens`, :mod:`.diagnostics` (+ quick replay on
  save), :mod:`.trace_summary` (``prodture/traceSummary``);
* :mod:`.server` builds the ``LanguageServer``.

Imports only prodture's trace/replay/runtime layers (never the debugger), plus pygls/lsprotocol,
which the ``prodture[debug]`` extra installs. The custom protocol is ``protocol/lsp.md``.
"""
