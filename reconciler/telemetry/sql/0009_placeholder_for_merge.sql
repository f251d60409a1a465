-- Placeholder (branch fr only): migration numbers must have no holes, and this branch's
-- migration is numbered 0010 because another branch brings 0009. Drop this file when
-- merging that branch (or renumber 0010 to 0009 if that branch does not come).
SELECT 1;
