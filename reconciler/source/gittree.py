"""Files read from a commit's tree, as a checkout would show them.

A site repository may keep a site file as a symbolic link to another file of the same
repository (Flux's own sites/demo.yaml links to the copy the package ships). In git a link
is a blob whose content is the target path, so reading the blob gives the path, not the
file. Links are followed here within the tree only: a target outside the repository, or
a chain longer than :data:`MAX_LINKS`, is no file (a commit must not make the agent read
the controller's own files).
"""

from __future__ import annotations

import posixpath

from git.objects import Blob, Tree

#: Links followed before giving up (git and most filesystems stop at about 40; a site
#: repository needs one).
MAX_LINKS = 8
#: git's file mode of a symbolic link.
LINK_MODE = 0o120000


def read_blob(tree: Tree, path: str) -> bytes | None:
    """The bytes of the file at ``path`` (POSIX, relative to the tree's root), links
    within the tree followed; None when there is no such file."""
    for _ in range(MAX_LINKS + 1):
        try:
            item = tree / path
        except KeyError:
            return None
        if not isinstance(item, Blob):
            return None
        data = bytes(item.data_stream.read())
        if item.mode != LINK_MODE:
            return data
        target = data.decode("utf-8", errors="replace")
        if target.startswith("/"):
            return None
        path = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
        if path == ".." or path.startswith("../"):
            return None
    return None


def file_names(tree: Tree, folder: str) -> list[str]:
    """Names of the files (links included) directly in ``folder``, sorted; empty when
    there is no such folder."""
    try:
        item = tree / folder
    except KeyError:
        return []
    if not isinstance(item, Tree):
        return []
    return sorted(str(b.name) for b in item.blobs)
