"""MkDocs hook: publish the committed reference results beside the pages.

One machine's figures live with the runs that produced them, in
``benchmarks/reference/<name>/README.md`` (and the plots they show). This hook adds those
files, and the registry's protocol YAML files they link to, to the site under the same
relative paths, so that the pages link to them as ``benchmarks/reference/<name>/README.md``
and ``mkdocs build --strict`` checks those links like any other.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File

REPO = Path(__file__).resolve().parent.parent
PUBLISHED = (
    "benchmarks/reference/*/README.md",
    "benchmarks/reference/*/report/plots/*.png",
    "variants/protocols/*.yaml",
)


def on_page_markdown(markdown, page, config, files):
    """In a published reference README, a link to a documentation page is written from the
    repository (``../../../docs/measuring.md``); on the site the pages sit at the root."""
    if page.file.src_uri.startswith("benchmarks/"):
        markdown = markdown.replace("../../../docs/", "../../../")
    return markdown


def on_files(files, config):
    """Add the reference READMEs, their plots and the protocol files to ``files``."""
    for pattern in PUBLISHED:
        for path in sorted(REPO.glob(pattern)):
            uri = path.relative_to(REPO).as_posix()
            files.append(File(uri, str(REPO), config["site_dir"], config["use_directory_urls"]))
    return files
