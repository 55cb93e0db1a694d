"""The database role the running application uses, apart from the role that owns the schema.

The append-only triggers of the audit trail and of the other GxP tables (qms.audit.dbtriggers)
hold against the application only if it cannot drop or disable them: in PostgreSQL the owner of
a table (and any superuser) can. So the schema is owned by one role, which runs `migrate`, and
web, workers, beat and relay connect as another that owns nothing and may only read and write
rows; on the append-only tables it may only read and insert (21 CFR 11.10(c), (e): records
protected, audit trail not alterable by the application or its users; EU GMP Annex 11 §12.1).

`grant_runtime_role ROLE` (run by the owner after every `migrate`) gives that role exactly
this; default privileges give it the same on tables a later migration creates, and running the
command again after each migration keeps the append-only refusals up to date.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection, transaction
from psycopg import sql

APPEND_ONLY_TRIGGER = "qms_append_only_row"  # qms.audit.dbtriggers.protect_sql

# Membership counts as being: a member of the owner (or of a superuser) can act as it.
ROLE_SQL = """
SELECT r.rolsuper OR EXISTS (SELECT 1 FROM pg_roles s WHERE s.rolsuper AND s.oid <> r.oid
                                AND pg_has_role(r.oid, s.oid, 'MEMBER')),
       r.rolname = current_user OR pg_has_role(r.oid, current_user, 'MEMBER'),
       r.rolcreaterole OR r.rolcreatedb OR r.rolbypassrls
           OR EXISTS (SELECT 1 FROM pg_roles s WHERE (s.rolcreaterole OR s.rolcreatedb OR s.rolbypassrls)
                         AND s.oid <> r.oid AND pg_has_role(r.oid, s.oid, 'MEMBER')),
       EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE pg_has_role(r.oid, c.relowner, 'MEMBER') AND n.nspname = current_schema())
  FROM pg_roles r WHERE r.rolname = %s
"""
APPEND_ONLY_TABLES_SQL = """
SELECT DISTINCT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE t.tgname = %s AND n.nspname = current_schema()
 ORDER BY c.relname
"""


class RuntimeRoleRefused(Exception):
    """The role cannot serve as the runtime role; `unknown` when it does not exist."""

    def __init__(self, message: str, *, unknown: bool = False) -> None:
        super().__init__(message)
        self.unknown = unknown


@dataclass(frozen=True)
class RuntimeGrant:
    role: str
    tables: int
    append_only: list[str]


def runtime_role_grant(role: str) -> RuntimeGrant:
    """Give `role` row access to the schema and nothing more: SELECT, INSERT, UPDATE, DELETE on
    every table (and on those later migrations create), the sequences, and on append-only
    tables SELECT and INSERT only. Refuses a superuser, a role that may create roles or
    databases or bypass row security, the connected role itself, and a role that owns tables
    of the schema: each could undo the protection."""
    with connection.cursor() as cursor:
        cursor.execute(ROLE_SQL, [role])
        row = cursor.fetchone()
    if row is None:
        raise RuntimeRoleRefused(f"no database role {role}: create it first (CREATE ROLE {role} LOGIN PASSWORD ...)",
                                 unknown=True)
    superuser, is_current, powerful, owns = row
    if superuser or powerful:
        raise RuntimeRoleRefused(f"role {role} is (or is a member of) a superuser or a role that may create roles "
                                 "or databases or bypass row security: the runtime role must be an ordinary role")
    if is_current:
        raise RuntimeRoleRefused(f"role {role} is (or is a member of) the role running this command, which owns "
                                 "the schema: the runtime role must be another one")
    if owns:
        raise RuntimeRoleRefused(f"role {role} owns tables of the schema, so it could drop their triggers: "
                                 "give them to the owner role first (REASSIGN OWNED)")
    name = sql.Identifier(role)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(APPEND_ONLY_TABLES_SQL, [APPEND_ONLY_TRIGGER])
        append_only = [table for (table,) in cursor.fetchall()]
        cursor.execute("SELECT count(*), current_schema() FROM pg_tables WHERE schemaname = current_schema()")
        tables, schema = cursor.fetchone()
        for statement in (
            "GRANT CONNECT ON DATABASE {database} TO {role}",
            "GRANT USAGE ON SCHEMA {schema} TO {role}",
            "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role}",
            "GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA {schema} TO {role}",
            "ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role}",
            "ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO {role}",
            "REVOKE TRUNCATE, REFERENCES, TRIGGER ON ALL TABLES IN SCHEMA {schema} FROM {role}",
        ):
            cursor.execute(sql.SQL(statement).format(database=sql.Identifier(connection.settings_dict["NAME"]),
                                                     schema=sql.Identifier(schema), role=name))
        for table in append_only:
            cursor.execute(sql.SQL("REVOKE UPDATE, DELETE, TRUNCATE ON {table} FROM {role}")
                           .format(table=sql.Identifier(table), role=name))
    return RuntimeGrant(role=role, tables=tables, append_only=append_only)
