-- Entity names are unique per licence, no longer across the installation (issue #19): a licence's
-- admin creating an entity whose name another licence uses must learn nothing about it. Paths name
-- an entity without its licence; the caller's API key says which licence, so a name is resolved
-- within the caller's licence.
ALTER TABLE entities DROP CONSTRAINT entities_name_key;
ALTER TABLE entities ADD CONSTRAINT entities_licence_name_key UNIQUE (licence_id, name);
