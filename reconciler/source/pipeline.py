"""The fetch pipeline: fetch the followed ref, verify the commit, judge the move to it,
validate its site file, and say what was found (an :class:`Outcome`). It runs in a worker
thread and changes nothing: :class:`~reconciler.source.controller.GitSource` applies the
outcome in the loop.

The followed branch (or tag) must move forward: a move to an ancestor of the revision in
control (a rollback) or to a commit that does not descend from it (a rewritten history)
is refused unless the agent runs with ``--allow-rollback`` or the site file *in control*
says ``control.allow_rollback: true`` (the commit being moved to cannot allow itself).
Going back to the last-known-good while a newer revision is in its gate is not refused:
it is what a failed gate does anyway. With signature verification on, the persisted
last-known-good is verified again at every start (:meth:`Pipeline.verify_stored`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime

from reconciler.config.model import Site
from reconciler.source.mirror import FetchError, GitMirror, Move
from reconciler.source.paths import StatePaths
from reconciler.source.revision import Candidate, Revision, short
from reconciler.source.settings import SourceSettings
from reconciler.source.store import StoredRevision
from reconciler.source.validate import Validation, Validator, resolved_state, validate_text
from reconciler.source.verify import VerifyResult, verify_commit

log = logging.getLogger("flux.source")

#: How to allow what a refused rollback refuses (the status message says it).
ALLOW_ROLLBACK = "allow with control.allow_rollback or --allow-rollback"


@dataclass(frozen=True)
class Outcome:
    """What one fetch-and-check found (computed in a worker thread, applied in the loop)."""

    at: datetime
    sha: str | None = None
    fetch_error: FetchError | None = None
    skipped: bool = False
    suspended: bool = False
    verify: VerifyResult | None = None
    missing: bool = False
    validation: Validation | None = None
    refused: tuple[str, str] | None = None  # (Validated reason, message) beyond the validator
    moved: str | None = None  # a refused rollback or rewritten history, said
    candidate: Candidate | None = None
    in_control: str | None = None  # the revision in control the move was judged against


def describe_move(move: Move, old: str, new: str) -> str:
    """A move of the followed ref that is not a fast-forward, for the status."""
    if move == "rollback":
        return f"rollback from {short(old)} to {short(new)}: not a fast-forward"
    return (
        f"move from {short(old)} to {short(new)}: not a fast-forward ({short(new)} does "
        f"not descend from {short(old)}: a rewritten history)"
    )


class Pipeline:
    """Fetch and check the followed ref's head (git and validation: blocking calls)."""

    def __init__(
        self,
        settings: SourceSettings,
        paths: StatePaths,
        mirror: GitMirror,
        validator: Validator,
    ) -> None:
        self.settings = settings
        self.paths = paths
        self.mirror = mirror
        self.validator = validator

    def fetch_and_check(
        self,
        at: datetime,
        skip: set[str],
        suspended: bool,
        in_control: str | None,
        allowance: str | None,
        lkg: str | None,
    ) -> Outcome:
        """Runs in a worker thread: git and validation must not block the control loop.

        ``skip``: commits already handled (not checked again); ``in_control`` is the
        revision a move of the followed ref is judged against; ``allowance`` what allows a
        rollback (None: refused); ``lkg`` the commit to keep referenced in the mirror."""
        if lkg is not None:
            try:
                self.mirror.pin(lkg)
            except Exception as exc:  # advisory: the fetch itself must still happen
                log.warning("cannot pin the last-known-good %s in the mirror: %s", lkg, exc)
        try:
            sha = self.mirror.fetch()
        except FetchError as exc:
            return Outcome(at, fetch_error=exc)
        if sha in skip:
            return Outcome(at, sha=sha, skipped=True)
        if suspended:
            return Outcome(at, sha=sha, suspended=True)
        return replace(self.check_commit(at, sha, in_control, allowance), in_control=in_control)

    def check_commit(
        self, at: datetime, sha: str, in_control: str | None, allowance: str | None
    ) -> Outcome:
        """Verify ``sha``, judge the move to it from ``in_control``, validate it."""
        try:
            check = verify_commit(self.mirror.open(), sha, self.settings, self.paths)
            if not check.ok:
                return Outcome(at, sha=sha, verify=check)
            note = self._judge_move(at, sha, check, in_control, allowance)
            if isinstance(note, Outcome):
                return note
            path = self.settings.site_path
            data = self.mirror.read_file(sha, path)
        except Exception as exc:
            return Outcome(at, fetch_error=FetchError("FetchFailed", f"reading {sha}: {exc}"))
        if data is None:
            return Outcome(at, sha=sha, verify=check, missing=True)
        return self._validate(at, sha, check, data, note)

    def _judge_move(
        self,
        at: datetime,
        sha: str,
        check: VerifyResult,
        in_control: str | None,
        allowance: str | None,
    ) -> Outcome | str:
        """The move from ``in_control`` to ``sha``: the note an allowed rollback is staged
        with ("" for a fast-forward), or the outcome that ends the check (refused, or the
        history could not be fetched)."""
        if in_control is None or in_control == sha:
            return ""
        try:
            move = self.mirror.relation(in_control, sha)
        except FetchError as exc:
            return Outcome(at, fetch_error=exc)
        if move == "forward":
            return ""
        what = describe_move(move, in_control, sha)
        if allowance is None:
            moved = f"refused {what}; {ALLOW_ROLLBACK}"
            return Outcome(at, sha=sha, verify=check, moved=moved)
        return f"{what.replace(': not a fast-forward', '')} allowed by {allowance}"

    def _validate(
        self, at: datetime, sha: str, check: VerifyResult, data: bytes, note: str
    ) -> Outcome:
        """Validate the site file's bytes at ``sha``; a candidate if all is well."""
        path = self.settings.site_path
        validation = validate_text(data, path, self.validator)
        if validation.site is None or not validation.ok:
            return Outcome(at, sha=sha, verify=check, validation=validation)
        site = validation.site
        if site.site.id != self.settings.site:
            refused = (
                "SiteIdMismatch",
                f"{path}: site.id is {site.site.id!r} but this agent runs site "
                f"{self.settings.site!r}; fix the file or the agent's --site",
            )
            return Outcome(at, sha=sha, verify=check, validation=validation, refused=refused)
        try:
            resolved = resolved_state(site)
        except (KeyError, ValueError) as exc:
            refused = ("ProfileUnresolved", f"{path}: {exc}")
            return Outcome(at, sha=sha, verify=check, validation=validation, refused=refused)
        candidate = Candidate(
            Revision(sha, site, "git"), path, data.decode("utf-8", "replace"), resolved, note
        )
        return Outcome(at, sha=sha, verify=check, validation=validation, candidate=candidate)

    def verify_stored(self, stored: StoredRevision, site: Site) -> VerifyResult:
        """The checks a fetched commit gets, for the persisted last-known-good: its commit
        (in the mirror) is signed by an allowed key, and the file holds what that commit
        has, so what is stored cannot be changed behind the signature's back."""
        sha, short_sha = stored.sha, short(stored.sha)
        path = self.settings.site_path
        try:
            if not self.mirror.has_commit(sha):
                return VerifyResult(
                    False,
                    "CommitMissing",
                    f"commit {short_sha} is not in the mirror {self.paths.repo_dir}, so its "
                    "signature cannot be checked",
                )
            check = verify_commit(self.mirror.open(), sha, self.settings, self.paths)
            if not check.ok:
                return check
            data = self.mirror.read_file(sha, path)
        except Exception as exc:  # never run what could not be checked; never fail to start
            return VerifyResult(False, "VerifierFailed", f"cannot check commit {short_sha}: {exc}")
        mismatch = self._same_as_committed(stored, site, data)
        return check if mismatch is None else mismatch

    def _same_as_committed(
        self, stored: StoredRevision, site: Site, data: bytes | None
    ) -> VerifyResult | None:
        """Why the stored last-known-good differs from ``data``, its site file as committed
        (None: it is the same)."""
        short_sha, where, path = short(stored.sha), self.paths.lkg_file, self.settings.site_path
        changed = f"{where} does not hold {path} as committed in {short_sha}: it was changed"
        if data is None or stored.site_path != path:
            return VerifyResult(False, "ContentMismatch", changed)
        if data.decode("utf-8", "replace") != stored.site_yaml:
            return VerifyResult(False, "ContentMismatch", changed)
        validation = validate_text(data, path, self.validator)
        if not validation.ok:
            first = validation.errors[0] if validation.errors else "not a valid site file"
            return VerifyResult(
                False, "Invalid", f"{path} at {short_sha} does not validate: {first}"
            )
        if validation.site != site:
            return VerifyResult(
                False,
                "ContentMismatch",
                f"{where}: the stored desired state differs from {path} as committed in "
                f"{short_sha}: it was changed",
            )
        return None
