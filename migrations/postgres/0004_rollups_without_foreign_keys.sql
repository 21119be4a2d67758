-- m004_rollups_without_foreign_keys: the rollups no longer check their names.
--
-- Every rollup row is written from usage events in the same statement that
-- inserted them (or rebuilt from usage_events), and usage_events keeps its
-- foreign keys: a rollup's name is always one an event has proven. The
-- rollups' own foreign keys checked it again, one query_llms probe per new
-- hourly row, about a tenth of a batch merge. Query LLMs are never deleted,
-- so nothing can leave a rollup row without its Query LLM.

ALTER TABLE usage_hourly DROP CONSTRAINT usage_hourly_name_fkey;
ALTER TABLE usage_totals DROP CONSTRAINT usage_totals_name_fkey;
