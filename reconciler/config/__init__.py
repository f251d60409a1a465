"""Desired state: the site model, profiles, loading and validation."""

from reconciler.config.loader import Problem, SiteFileError, check_site_file, load_site
from reconciler.config.model import Site
from reconciler.config.profiles import Profile, Register, RegisterType
from reconciler.config.resolve import builtin_profile, resolve_profile

__all__ = [
    "Problem",
    "Profile",
    "Register",
    "RegisterType",
    "Site",
    "SiteFileError",
    "builtin_profile",
    "check_site_file",
    "load_site",
    "resolve_profile",
]
