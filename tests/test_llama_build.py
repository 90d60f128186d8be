"""The installed llama-cpp-python build generates without crashing (the -march=native AMX build
segfaults on the first decode on GCC 12 machines), in a child process so a crash is a failure."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import smollm_path


def test_installed_llama_cpp_generates() -> None:
    code = (
        "import llama_cpp, sys\n"
        f"llm = llama_cpp.Llama(model_path={str(smollm_path())!r}, n_ctx=256, n_threads=2, verbose=False)\n"
        "out = llm.create_chat_completion([{'role': 'user', 'content': 'Hi'}], max_tokens=8, temperature=0)\n"
        "print(out['usage']['completion_tokens'])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"llama.cpp crashed (exit {done.returncode}): {done.stderr[-2000:]}"
    assert int(done.stdout.strip()) > 0
