"""MkDocs hook: the README is the site's getting-started page (one source for both).

Its links into docs/ become links within the site, and the repository files it links to (LICENSE,
CITATION.cff, an example) are copied beside it, so `mkdocs build --strict` checks every link.
"""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
REPO_FILES = ("LICENSE", "CITATION.cff", "examples/custom_env.py")


def on_files(files: Files, config) -> Files:
    readme = (ROOT / "README.md").read_text()
    index = File.generated(config, "index.md", content=re.sub(r"\]\(docs/", "](", readme))
    files.append(index)
    for name in REPO_FILES:
        files.append(File(name, str(ROOT), config["site_dir"], config["use_directory_urls"]))
    return files


def on_page_markdown(markdown: str, page, config, files) -> str:
    """docs/*.md link to repository files as ../FILE (right on GitHub); in the site FILE sits at the root."""
    for name in REPO_FILES:
        markdown = markdown.replace(f"](../{name})", f"]({name})")
    return markdown
