"""``python -m benchmarks --list`` | ``python -m benchmarks NAME [--smoke] [--out DIR] [--set KEY=VALUE ...]``.

Runs one registered benchmark (:mod:`benchmarks.harness`) from the repository root and writes
``DIR/NAME.json`` and ``DIR/NAME.md`` (``DIR``: ``benchmarks/results`` unless given).
``--smoke`` runs it at its smoke size (seconds: a check that it runs, not a measurement);
``--set`` overrides an option (lists comma-separated: ``--set n=1,8``).
"""

from __future__ import annotations

import argparse
import logging
import sys

from benchmarks import harness


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[1].split("\n")[0])
    ap.add_argument("name", nargs="?", help="the benchmark to run (see --list)")
    ap.add_argument("--list", action="store_true", help="list the registered benchmarks and their options")
    ap.add_argument("--smoke", action="store_true", help="the smallest sizes (seconds): checks that it runs")
    ap.add_argument("--out", default=str(harness.RESULTS), help="folder for NAME.json and NAME.md")
    ap.add_argument("--set", dest="sets", nargs="+", action="extend", default=[], metavar="KEY=VALUE", help="override an option")
    args = ap.parse_args(argv)
    benchmarks = harness.registry()
    if args.list:
        width = max(map(len, benchmarks))
        for name, bench in benchmarks.items():
            print(f"{name:<{width}}  {bench.description}")
            print(f"{'':<{width}}  options: " + ", ".join(f"{k}={v!r}" for k, v in bench.defaults.items()))
            if bench.corpus:
                print(f"{'':<{width}}  reads a prepared corpus, even at --smoke: --set {bench.corpus}=DIR")
        return 0
    if args.name not in benchmarks:
        ap.error(f"give a benchmark to run, one of: {', '.join(benchmarks)} (or --list)")
    bench = benchmarks[args.name]
    overrides = {}
    for kv in args.sets:
        key, sep, value = kv.partition("=")
        if not sep or key not in bench.defaults:
            ap.error(f"--set {kv}: expected KEY=VALUE with KEY one of {', '.join(bench.defaults)}")
        try:
            overrides[key] = harness.parse_value(value, bench.defaults[key])
        except ValueError as e:
            ap.error(f"--set {kv}: {e}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    result = harness.run(args.name, smoke=args.smoke, overrides=overrides)
    json_path, md_path = harness.write(result, args.out)
    print(md_path.read_text(), end="")
    print(f"wrote {json_path} and {md_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
