-- Herald core schema: tenancy, data tables, records and the change log.

-- Tenancy (SPEC §1) -------------------------------------------------------------------------------
CREATE TABLE licences (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name        text NOT NULL UNIQUE,
  created_at  timestamptz NOT NULL DEFAULT now()
);

-- Entity names are unique across the installation: paths name an entity without its licence.
CREATE TABLE entities (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  licence_id  bigint NOT NULL REFERENCES licences (id),
  name        text NOT NULL UNIQUE,
  created_at  timestamptz NOT NULL DEFAULT now()
);

-- Keys are stored as SHA-256 of the raw key (they are 256-bit random values, so a slow hash adds
-- nothing). entity_ids NULL = every entity of the licence.
CREATE TABLE api_keys (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  licence_id  bigint NOT NULL REFERENCES licences (id),
  name        text NOT NULL,
  key_hash    text NOT NULL UNIQUE,
  key_prefix  text NOT NULL,
  is_admin    boolean NOT NULL DEFAULT false,
  entity_ids  bigint[],
  created_at  timestamptz NOT NULL DEFAULT now(),
  revoked_at  timestamptz,
  UNIQUE (licence_id, name)
);

CREATE TABLE access_tokens (
  token_hash  text PRIMARY KEY,
  api_key_id  bigint NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
  jti         uuid NOT NULL,
  expires_at  timestamptz NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX access_tokens_expiry ON access_tokens (expires_at);

-- Data tables (SPEC §3) ---------------------------------------------------------------------------
-- Profile tables get short numeric ids from this sequence; custom tables get UUIDs.
CREATE SEQUENCE profile_table_id_seq;

CREATE TABLE data_tables (
  id          text PRIMARY KEY,
  entity_id   bigint NOT NULL REFERENCES entities (id),
  kind        text NOT NULL CHECK (kind IN ('PROFILE_TABLE', 'CUSTOM_TABLE')),
  name        text NOT NULL,
  definition  jsonb NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  UNIQUE (entity_id, kind, name)
);

-- Records of profile and custom tables, stored generically. record_id is the profileId of a
-- profile; business_key is the primary-key value of a custom-table record.
CREATE TABLE records (
  record_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  table_id       text NOT NULL REFERENCES data_tables (id) ON DELETE CASCADE,
  business_key   text,
  attributes     jsonb NOT NULL,
  subscriptions  jsonb NOT NULL DEFAULT '{}',
  segments       jsonb NOT NULL DEFAULT '{}',
  version        integer NOT NULL DEFAULT 1,
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX records_business_key ON records (table_id, business_key) WHERE business_key IS NOT NULL;
CREATE INDEX records_table ON records (table_id, record_id);
CREATE INDEX records_attributes ON records USING gin (attributes jsonb_path_ops);

-- Unique attribute values, enforced by the primary key: two concurrent writers of one value cannot
-- both commit (no read-then-write race in application code).
CREATE TABLE record_keys (
  table_id   text NOT NULL,
  attribute  text NOT NULL,
  value      text NOT NULL,
  record_id  bigint NOT NULL REFERENCES records (record_id) ON DELETE CASCADE,
  PRIMARY KEY (table_id, attribute, value)
);
CREATE INDEX record_keys_record ON record_keys (record_id);

-- The change log (DESIGN §3–4) --------------------------------------------------------------------
-- Inbox ids come from a sequence with CACHE 1: with a per-session cache a later writer could take a
-- smaller id than an earlier committed one, and the sequencer's insertion order would no longer
-- follow each record's commit order.
CREATE SEQUENCE change_event_id_seq CACHE 1;

CREATE TABLE change_events (
  id               bigint PRIMARY KEY DEFAULT nextval('change_event_id_seq'),
  position         bigint UNIQUE,             -- NULL until the sequencer stamps it
  entity_id        bigint NOT NULL,
  source           text NOT NULL,             -- PROFILE_TABLE, CUSTOM_TABLE, ETL, EXPORT, FILE_SYNCHRONIZATION, CUSTOM_ACTION
  source_id        text NOT NULL,
  event_type       text NOT NULL,
  record_key       text NOT NULL,             -- ordering key inside the source (profileId, business key, execution id)
  keys             jsonb NOT NULL DEFAULT '{}',
  state            jsonb NOT NULL DEFAULT '{}',   -- the record after the write (before it, for DELETE)
  fields           jsonb NOT NULL DEFAULT '[]',   -- attributes provided (CREATE, DELETE) or changed (UPDATE)
  previous         jsonb NOT NULL DEFAULT '{}',   -- previous values of the changed attributes
  extra            jsonb NOT NULL DEFAULT '{}',   -- event-type specific fields (subscription, segment, trigger data)
  version          integer,
  declared_events  jsonb NOT NULL DEFAULT '[]',
  origin           jsonb NOT NULL DEFAULT '{}',
  occurred_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
  sequenced_at     timestamptz
);
-- The sequencer's work queue: committed events without a position, in insertion order.
CREATE INDEX change_events_unsequenced ON change_events (id) WHERE position IS NULL;
CREATE INDEX change_events_entity_position ON change_events (entity_id, position) WHERE position IS NOT NULL;
CREATE INDEX change_events_occurred ON change_events (occurred_at);

-- The highest stamped position. Its row lock also serialises stamping transactions.
CREATE TABLE log_head (
  singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  position   bigint NOT NULL DEFAULT 0
);
INSERT INTO log_head (singleton, position) VALUES (true, 0);
