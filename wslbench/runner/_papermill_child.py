"""Child-process entry point of :func:`wslbench.runner.execute.execute_notebook`."""

from __future__ import annotations

import json
import sys

import papermill

from wslbench.runner.zmq_wakeup import install_wakeup_guard


def main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    install_wakeup_guard()  # nbclient's waits here are the same as under Voila
    try:
        papermill.execute_notebook(
            spec["input"],
            spec["output"],
            parameters=spec["parameters"],
            cwd=spec["cwd"],
            kernel_name=spec["kernel_name"],
            execution_timeout=spec["timeout"],
            progress_bar=False,
            log_output=True,
        )
    except papermill.PapermillExecutionError as exc:
        print(f"wslbench: notebook failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
