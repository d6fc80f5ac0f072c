#!/usr/bin/env bash
# Set up everything this project needs on a Debian/Ubuntu machine, then run a command
# inside the project's virtual environment:
#
#   ./bootstrap.sh snakemake --cores all     # build the paper (build/review.pdf)
#   ./bootstrap.sh pytest                    # run the tests
#
# Idempotent: what is already installed is skipped. Needs root or sudo for the Debian
# packages; without them it stops and names what to install by hand.
set -euo pipefail
cd "$(dirname "$0")"

DEB_PACKAGES=(texlive-latex-base texlive-latex-recommended latexmk dataset-fashion-mnist poppler-utils)
VENV=.venv

say() { printf '[bootstrap] %s\n' "$*" >&2; }

missing=()
if command -v dpkg-query >/dev/null 2>&1; then
    for p in "${DEB_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
else
    for c in latexmk pdflatex bibtex pdftotext; do command -v "$c" >/dev/null || missing+=("$c"); done
fi
if ! python3 -c "import venv, ensurepip" >/dev/null 2>&1; then
    missing+=(python3-venv)
fi

if [ ${#missing[@]} -gt 0 ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
        say "missing: ${missing[*]}"
        say "this is not a Debian/Ubuntu machine: install LaTeX (pdflatex, bibtex, latexmk, natbib, booktabs),"
        say "poppler's pdftotext, Python's venv module and Fashion-MNIST (set data.root in config.yaml) by hand."
        exit 1
    fi
    if [ "$(id -u)" -eq 0 ]; then SUDO=(); elif command -v sudo >/dev/null 2>&1; then SUDO=(sudo); else
        say "missing Debian packages: ${missing[*]}"
        say "run as root, or install them by hand: sudo apt-get install ${missing[*]}"
        exit 1
    fi
    say "installing Debian packages: ${missing[*]}"
    "${SUDO[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
    say "creating the virtual environment $VENV"
    python3 -m venv "$VENV"
fi
stamp="$VENV/.installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    say "installing Python packages (pinned ranges in pyproject.toml)"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -e '.[test]'
    touch "$stamp"
fi

[ $# -eq 0 ] && { say "set-up done; usage: ./bootstrap.sh snakemake --cores all | ./bootstrap.sh pytest"; exit 0; }
export PATH="$PWD/$VENV/bin:$PATH"
exec "$@"
