-- Why: a trial is now diverged not only when its loss goes non-finite but
-- also when it collapses (a loss stuck at or above chance after warmup, a
-- gradient norm of exactly 0: the trial's `divergence_*` keys). The record
-- keeps which rule fired and what it saw, so `status`, `export` and the
-- report can say why a grid point has no score. Trials recorded diverged
-- before this migration can only have had a non-finite loss or gradient.

ALTER TABLE trials ADD COLUMN diverged_rule TEXT;
ALTER TABLE trials ADD COLUMN diverged_message TEXT;

UPDATE trials SET diverged_rule = 'non_finite'
WHERE state = 'diverged' OR diverged_step IS NOT NULL;
