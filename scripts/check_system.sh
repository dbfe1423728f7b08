#!/usr/bin/env bash
# Checks what `make setup` needs from the system and says how to get what is missing.
set -u
python_cmd="${1:-python3.11}"
missing=0

if ! command -v "$python_cmd" >/dev/null 2>&1; then
  echo "setup: $python_cmd not found. The ROS 2 wheels need CPython 3.11:"
  echo "       apt-get install python3.11 python3.11-venv python3.11-dev   (or pyenv install 3.11)"
  echo "       or point make at one: make setup PYTHON=/path/to/python3.11"
  missing=1
else
  version=$("$python_cmd" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) || version="not runnable"
  if [ "$version" != "3.11" ]; then
    echo "setup: $python_cmd is Python $version; the ROS 2 wheels need Python 3.11 (make setup PYTHON=python3.11)"
    missing=1
  elif ! "$python_cmd" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    echo "setup: $python_cmd has no venv/ensurepip module: apt-get install python3.11-venv"
    missing=1
  fi
fi
if ! command -v cmake >/dev/null 2>&1; then
  echo "setup: cmake not found (needed to build msg/ and srv/ with rosidl): apt-get install cmake"
  missing=1
fi
for compiler in cc c++; do
  if ! command -v "$compiler" >/dev/null 2>&1; then
    echo "setup: no $compiler compiler (rosidl generates C/C++ type support): apt-get install build-essential"
    missing=1
  fi
done
exit $missing
