"""`flux diff` and `flux status`: the desired state in git against what is observed."""
