-- +goose Up
-- Every payload is a few KB of JSON, over PostgreSQL's TOAST threshold, so
-- each inbox INSERT compresses it and each read that needs it decompresses
-- it. lz4 does both faster than pglz, PostgreSQL's default: an INSERT …
-- SELECT of 3 KB payloads took 7 µs a row with lz4 and 18 µs with pglz here
-- (BENCHMARKS.md), and the group committer runs that work on the one batch
-- it has in flight. Rows stored before keep pglz until they are rewritten;
-- both are read alike. It changes the column's metadata only, without
-- reading the table, but under an exclusive lock: it waits for the
-- transactions under way on the table and holds back the inbox INSERTs
-- meanwhile, as 00006's and 00007's builds do. It needs PostgreSQL 14 built
-- with lz4 (Debian's, Ubuntu's, RHEL's and the official image are):
-- elsewhere payloads keep the server's default. The ALTER is EXECUTEd from
-- a string: PL/pgSQL parses a block's statements before it runs any, and
-- a server older than 14 does not know SET COMPRESSION.
-- +goose StatementBegin
DO $$
BEGIN
    IF current_setting('server_version_num')::int >= 140000 THEN
        EXECUTE 'ALTER TABLE webhook_events ALTER COLUMN payload SET COMPRESSION lz4';
    END IF;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'this server has no lz4: payloads keep its default compression';
END
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DO $$
BEGIN
    IF current_setting('server_version_num')::int >= 140000 THEN
        EXECUTE 'ALTER TABLE webhook_events ALTER COLUMN payload SET COMPRESSION default';
    END IF;
END
$$;
-- +goose StatementEnd
