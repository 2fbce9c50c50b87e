-- 0001: the seed's tables (tenants, exposure_events) and the signal store.
--
-- Idempotent: every object is created only if its name is free, so a database that already holds the seed's
-- tables (created by its API's migrations) keeps them as they are. Applied by `recsys db migrate` and, on first
-- use, by the Publish function (recsys.database.migrations, under an advisory lock).

CREATE TABLE IF NOT EXISTS tenants (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    external_id text NOT NULL UNIQUE,
    name text NOT NULL,
    status text NOT NULL DEFAULT 'active',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The seed's exposure log (one row per served response, its items in `response`), with this project's event
-- fields added: a row whose item_id is set is one event (any event_type); a row without is expanded into one
-- exposure event per item of response.items. The seed's request_id is a uuid; here it is text (any request id).
CREATE TABLE IF NOT EXISTS exposure_events (
    id bigserial,
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    occurred_at timestamptz NOT NULL,
    request_id text,
    surface text NOT NULL,
    segment text,
    user_key bytea,
    session_id text,
    experiment_id text,
    experiment_variant text,
    algo_version text,
    config_etag text,
    rules_etag text,
    request jsonb,
    response jsonb,
    meta jsonb,
    user_id text,
    item_id text,
    rank bigint,
    event_type text,
    event_id text,
    PRIMARY KEY (occurred_at, id)
) PARTITION BY RANGE (occurred_at);
CREATE TABLE IF NOT EXISTS exposure_events_default PARTITION OF exposure_events DEFAULT;
CREATE INDEX IF NOT EXISTS exposure_events_tenant_day ON exposure_events (tenant_id, surface, occurred_at);

-- One published signal version per (tenant, surface, day): the day is the last day of its window. The manifest
-- is kept as published (its exact text), so an API serving from here answers exactly as from the artifacts.
CREATE TABLE IF NOT EXISTS recsys_signal_versions (
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    namespace text NOT NULL,
    day date NOT NULL,
    manifest_version text NOT NULL,
    manifest text NOT NULL,
    kinds text[] NOT NULL,
    published_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, namespace, day)
);

-- What the API serves per (tenant, surface) in database mode: moved by publish (and rollback) after the
-- artifact store's pointer moved, in the transaction that wrote the version's rows.
CREATE TABLE IF NOT EXISTS recsys_signal_current (
    tenant_id uuid NOT NULL REFERENCES tenants (id),
    namespace text NOT NULL,
    day date NOT NULL,
    manifest_version text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, namespace),
    FOREIGN KEY (tenant_id, namespace, day) REFERENCES recsys_signal_versions (tenant_id, namespace, day)
);

-- One table per artifact kind: the artifact's rows, exactly (row_no keeps the artifact's row order), columns as in
-- docs/reference/artifacts.md. Deleting a version deletes its rows.
CREATE TABLE IF NOT EXISTS recsys_popularity (
    tenant_id uuid NOT NULL, namespace text NOT NULL, day date NOT NULL, row_no integer NOT NULL,
    item_id text NOT NULL, score double precision, count bigint, rank integer,
    PRIMARY KEY (tenant_id, namespace, day, row_no),
    FOREIGN KEY (tenant_id, namespace, day) REFERENCES recsys_signal_versions ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS recsys_cooc (
    tenant_id uuid NOT NULL, namespace text NOT NULL, day date NOT NULL, row_no integer NOT NULL,
    item_id text NOT NULL, neighbor_id text NOT NULL, count bigint, score double precision, rank integer,
    PRIMARY KEY (tenant_id, namespace, day, row_no),
    FOREIGN KEY (tenant_id, namespace, day) REFERENCES recsys_signal_versions ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS recsys_implicit (
    tenant_id uuid NOT NULL, namespace text NOT NULL, day date NOT NULL, row_no integer NOT NULL,
    user_id text NOT NULL, item_id text NOT NULL, score double precision, count bigint, last_ts timestamptz,
    rank integer,
    PRIMARY KEY (tenant_id, namespace, day, row_no),
    FOREIGN KEY (tenant_id, namespace, day) REFERENCES recsys_signal_versions ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS recsys_implicit_user ON recsys_implicit (tenant_id, namespace, day, user_id);
CREATE TABLE IF NOT EXISTS recsys_content_sim (
    tenant_id uuid NOT NULL, namespace text NOT NULL, day date NOT NULL, row_no integer NOT NULL,
    item_id text NOT NULL, tags text[], similar_items text[], similar_scores double precision[],
    PRIMARY KEY (tenant_id, namespace, day, row_no),
    FOREIGN KEY (tenant_id, namespace, day) REFERENCES recsys_signal_versions ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS recsys_session_seq (
    tenant_id uuid NOT NULL, namespace text NOT NULL, day date NOT NULL, row_no integer NOT NULL,
    item_id text NOT NULL, next_item_id text NOT NULL, count bigint, score double precision, rank integer,
    PRIMARY KEY (tenant_id, namespace, day, row_no),
    FOREIGN KEY (tenant_id, namespace, day) REFERENCES recsys_signal_versions ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS recsys_item_knn (
    tenant_id uuid NOT NULL, namespace text NOT NULL, day date NOT NULL, row_no integer NOT NULL,
    item_id text NOT NULL, neighbor_id text NOT NULL, count bigint, score double precision, rank integer,
    PRIMARY KEY (tenant_id, namespace, day, row_no),
    FOREIGN KEY (tenant_id, namespace, day) REFERENCES recsys_signal_versions ON DELETE CASCADE
);

-- The seed's signal tables, as views over the signal store (created only where the name is free: a database
-- with the seed's own tables keeps them). namespace = surface; day = the last day of the published window.
-- score is rounded to the seed's numeric(18,6); item_tags holds the tags of the current version.
DO $$
BEGIN
    IF to_regclass('item_popularity_daily') IS NULL THEN
        CREATE VIEW item_popularity_daily AS
            SELECT p.tenant_id, p.namespace, p.item_id, p.day, p.score::numeric(18, 6) AS score,
                   v.published_at AS updated_at
            FROM recsys_popularity p JOIN recsys_signal_versions v USING (tenant_id, namespace, day);
    END IF;
    IF to_regclass('item_covisit_daily') IS NULL THEN
        CREATE VIEW item_covisit_daily AS
            SELECT c.tenant_id, c.namespace, c.item_id, c.neighbor_id, c.day, c.score::numeric(18, 6) AS score,
                   v.published_at AS updated_at
            FROM recsys_cooc c JOIN recsys_signal_versions v USING (tenant_id, namespace, day);
    END IF;
    IF to_regclass('item_tags') IS NULL THEN
        CREATE VIEW item_tags AS
            SELECT s.tenant_id, s.namespace, s.item_id, coalesce(s.tags, '{}') AS tags, NULL::numeric(18, 6) AS price,
                   v.published_at AS created_at, v.published_at AS updated_at
            FROM recsys_content_sim s
            JOIN recsys_signal_current c USING (tenant_id, namespace, day)
            JOIN recsys_signal_versions v USING (tenant_id, namespace, day);
    END IF;
END
$$;
