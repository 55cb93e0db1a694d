"""SQL that makes audit tables append-only and chains their rows, used by migrations.

Each audited table gets:
- BEFORE UPDATE OR DELETE (per row) and BEFORE TRUNCATE (per statement) triggers that raise,
  so neither the application nor anyone without the power to drop triggers can rewrite it;
- a DEFERRABLE INITIALLY DEFERRED constraint trigger that, at COMMIT, appends one entry per
  new row to `qms_auditchainentry`: hash = sha256(prev_hash | seq | table | pk | row digest).

Appending at commit under one advisory lock serialises the chain in commit order, so
concurrent writers can never fork or skip it, while the lock is held only for the commit
itself. The row digest is sha256 of `jsonb_strip_nulls(to_jsonb(row))::text` computed in UTC;
stripping nulls keeps old digests valid when a later migration adds a nullable column (the
only kind of column an audited table may gain).
"""

from __future__ import annotations

from django.db import migrations

CHAIN_LOCK_KEY = 7260114  # arbitrary, fixed: the one advisory lock of the audit chain
GENESIS_HASH = "0" * 64

FUNCTIONS_SQL = f"""
CREATE OR REPLACE FUNCTION qms_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit table %: % is not allowed (append-only, 21 CFR 11.10(e))',
        TG_TABLE_NAME, TG_OP USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE OR REPLACE FUNCTION qms_row_digest(content jsonb) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT encode(sha256(convert_to(jsonb_strip_nulls(content)::text, 'UTF8')), 'hex')
$$;

CREATE OR REPLACE FUNCTION qms_audit_chain_append() RETURNS trigger
LANGUAGE plpgsql SET TimeZone TO 'UTC' AS $$
DECLARE
    last_seq bigint;
    last_hash text;
    content jsonb := to_jsonb(NEW);  -- once: a row may carry a large value (an instrument's body)
    row_key text := content ->> TG_ARGV[0];
    digest text := qms_row_digest(content);
BEGIN
    PERFORM pg_advisory_xact_lock({CHAIN_LOCK_KEY});
    SELECT seq, entry_hash INTO last_seq, last_hash
      FROM qms_auditchainentry ORDER BY seq DESC LIMIT 1;
    IF last_seq IS NULL THEN
        last_seq := 0;
        last_hash := '{GENESIS_HASH}';
    END IF;
    INSERT INTO qms_auditchainentry
        (seq, table_name, row_pk, row_digest, prev_hash, entry_hash, chained_at)
    VALUES (last_seq + 1, TG_TABLE_NAME, row_key, digest, last_hash,
            encode(sha256(convert_to(concat_ws('|', last_hash, (last_seq + 1)::text,
                   TG_TABLE_NAME, row_key, digest), 'UTF8')), 'hex'),
            clock_timestamp());
    RETURN NULL;
END $$;
"""

FUNCTIONS_REVERSE_SQL = """
DROP FUNCTION IF EXISTS qms_audit_chain_append();
DROP FUNCTION IF EXISTS qms_row_digest(jsonb);
DROP FUNCTION IF EXISTS qms_refuse_change();
"""


def protect_sql(table: str) -> str:
    """Refuse UPDATE, DELETE and TRUNCATE on `table`."""
    return f"""
CREATE TRIGGER qms_append_only_row BEFORE UPDATE OR DELETE ON "{table}"
    FOR EACH ROW EXECUTE FUNCTION qms_refuse_change();
CREATE TRIGGER qms_append_only_truncate BEFORE TRUNCATE ON "{table}"
    FOR EACH STATEMENT EXECUTE FUNCTION qms_refuse_change();
"""


def chain_sql(table: str, pk_column: str) -> str:
    # Table and column names come from migrations, never from users.
    return f"""
INSERT INTO qms_auditedtable (table_name, pk_column) VALUES ('{table}', '{pk_column}')
    ON CONFLICT DO NOTHING;
CREATE CONSTRAINT TRIGGER qms_audit_chain AFTER INSERT ON "{table}"
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION qms_audit_chain_append('{pk_column}');
"""


def audited_table(table: str, pk_column: str = "id") -> migrations.RunSQL:
    """Migration operation: make `table` append-only and chain its rows."""
    reverse = f"""
DROP TRIGGER IF EXISTS qms_audit_chain ON "{table}";
DROP TRIGGER IF EXISTS qms_append_only_row ON "{table}";
DROP TRIGGER IF EXISTS qms_append_only_truncate ON "{table}";
"""
    return migrations.RunSQL(protect_sql(table) + chain_sql(table, pk_column), reverse)


def history_table(table: str) -> migrations.RunSQL:
    """Migration operation for a django-simple-history table (primary key `history_id`)."""
    return audited_table(table, "history_id")


def chain_functions() -> migrations.RunSQL:
    return migrations.RunSQL(FUNCTIONS_SQL, FUNCTIONS_REVERSE_SQL)


def chain_tables_protected() -> migrations.RunSQL:
    """The chain and its registry are append-only too."""
    return migrations.RunSQL(protect_sql("qms_auditchainentry") + protect_sql("qms_auditedtable"))
