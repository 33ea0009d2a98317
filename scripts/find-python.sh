#!/usr/bin/env bash
# Prints the path of a working Python interpreter of version $1 (e.g. 3.13), or nothing (exit 1).
# Looks in pyenv's versions first (its shims on PATH may refuse to run), then on PATH.
set -u
want="$1"
root="${PYENV_ROOT:-}"
if [ -z "$root" ] && command -v pyenv >/dev/null 2>&1; then root="$(pyenv root)"; fi
[ -n "$root" ] || root="$HOME/.pyenv"
for candidate in "$root"/versions/"$want".*/bin/python3 "$(command -v "python$want" 2>/dev/null)"; do
  if [ -n "$candidate" ] && [ -x "$candidate" ] &&
     "$candidate" -c "import sys; assert '%d.%d' % sys.version_info[:2] == '$want'" >/dev/null 2>&1; then
    echo "$candidate"; exit 0
  fi
done
exit 1
