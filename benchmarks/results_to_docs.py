"""Copy a ``ddcmh-bench`` run's table and plots into the documentation's results page.

Run: ``python benchmarks/results_to_docs.py RUN_DIR NAME [--title T] [--command C] [--slug S]
[--append | --prepend]``

Writes ``docs/results/NAME.md`` (the run's ``results.md`` with headings moved one level down,
the machine-specific file list dropped, and the plots linked) and copies the PNG plots to
``docs/results/NAME/``. With ``--append`` (``--prepend``) the section is added after (before) an
existing page's sections (a second run of the same dataset, e.g. with another configuration).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

DOCS_RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"
PLOTS = ("map_vs_bits.png", "pr_curves.png", "precision_at_n.png")


def convert(run_dir: Path, name: str, title: str | None, command: str | None, slug: str) -> str:
    """The Markdown section for one run."""
    results = json.loads((run_dir / "results.json").read_text())
    lines = []
    for line in (run_dir / "results.md").read_text().splitlines():
        if line.startswith("# "):
            continue
        if line.startswith("Files in "):
            continue
        lines.append("#" + line if line.startswith("## ") else line)
    plot_folder = DOCS_RESULTS / name / slug
    plot_folder.mkdir(parents=True, exist_ok=True)
    for plot in PLOTS:
        if (run_dir / plot).exists():
            shutil.copy(run_dir / plot, plot_folder / plot)
    heading = f"### {title}" if title else ""
    config = results["config"]
    provenance = (
        f"Run of {results['created']} with ddcmh {results['ddcmh_version']}, torch "
        f"{results['versions'].get('torch')}; dataset fingerprint sha256 "
        f"{results['dataset']['fingerprint']['sha256'][:16]}; split checksum "
        f"{results['dataset']['split']['checksum'][:16]}; hashers {', '.join(config['hashers']) or 'none'}; "
        f"methods {', '.join(config.get('methods', [])) or 'DDCMH only'}; "
        f"bits {config['bits']}; seeds {config['seeds']}; model settings {json.dumps(config['model'])}"
        + (
            f"; tuning grid {json.dumps(config['tune'])} (objective {config['tune_objective']})."
            if config.get("tune")
            else "."
        )
    )
    images = "\n".join(f"![{plot[:-4]}]({name}/{slug}/{plot})" for plot in PLOTS if (run_dir / plot).exists())
    command_line = f"\n\nCommand: `{command}`" if command else ""
    return "\n".join([heading, "", provenance + command_line, *lines, "", images, ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("name")
    parser.add_argument("--title")
    parser.add_argument("--command")
    placement = parser.add_mutually_exclusive_group()
    placement.add_argument("--append", action="store_true", help="add the section after the page's")
    placement.add_argument("--prepend", action="store_true", help="add the section before the page's")
    parser.add_argument("--slug", help="folder name of the plots (default: the run folder's name)")
    arguments = parser.parse_args()
    section = convert(
        arguments.run_dir,
        arguments.name,
        arguments.title,
        arguments.command,
        arguments.slug or arguments.run_dir.name,
    )
    page = DOCS_RESULTS / f"{arguments.name}.md"
    keep = (arguments.append or arguments.prepend) and page.exists()
    existing = page.read_text() if keep else ""
    page.write_text(section + existing if arguments.prepend else existing + section)
    print(f"wrote {page}")


if __name__ == "__main__":
    main()
