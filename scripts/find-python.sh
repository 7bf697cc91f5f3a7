#!/usr/bin/env bash
# Print the path of a working Python X.Y interpreter (`scripts/find-python.sh 3.13`),
# or nothing. pyenv's own builds are tried first: its `python3.13` shim on PATH
# fails unless 3.13 is pyenv's selected version, so each candidate is run.
set -u
want=${1:?usage: find-python.sh X.Y}
root=${PYENV_ROOT:-$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")}
candidates=$(ls -d "$root"/versions/"$want".*/bin/python"$want" 2>/dev/null | sort -rV)
for py in $candidates $(command -v "python$want" 2>/dev/null); do
  if "$py" -c "import sys; sys.exit(sys.version_info[:2] != tuple(map(int, '$want'.split('.'))))" \
      >/dev/null 2>&1; then
    echo "$py"
    exit 0
  fi
done
exit 1
