"""The baseline: python-frontmatter's `frontmatter.load` over every article file of a store.

    python bench/frontmatter_loop.py STORE_DIR
"""

from __future__ import annotations

import os
import sys

import frontmatter

SUFFIXES = (".md", ".markdown", ".txt", ".yaml", ".yml")


def main() -> None:
    count = 0
    for folder, _dirs, names in os.walk(sys.argv[1]):
        for name in names:
            if name.lower().endswith(SUFFIXES):
                post = frontmatter.load(os.path.join(folder, name))
                count += bool(post.metadata.get("title"))
    print(count)


if __name__ == "__main__":
    main()
