-- A profile's dataCollectionInformation (SPEC §3, v4 profile calls): where and how its data was
-- collected, as the last write that gave it said ({"date", "source", "way"}, each optional). It is
-- kept beside the record, not among its attributes: it is no attribute of the table, it is in no
-- event, and a write that changes only it is no UPDATE (it bumps neither version nor updated_at).
-- NULL = never given (every custom-table record, and profiles written before this migration).
-- Adding a nullable column without a default rewrites nothing: instant on a table of any size.
ALTER TABLE records ADD COLUMN data_collection jsonb;
