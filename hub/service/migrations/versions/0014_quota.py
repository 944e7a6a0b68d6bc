"""Quota decisions in one round trip on PostgreSQL: the function ``polartep_admit_server``.

On PostgreSQL a spawn decision was six round trips (BEGIN, the account row's lock, the old reservation's delete,
the read of what runs, the reservation's insert, COMMIT). This function does the same steps in one call: it locks
the account row, reads the account's standing without the server's previous reservation (each statement with a
fresh snapshot, as the separate statements did), applies the rule of ``usage/quota.py`` and replaces the server's reservation
when it fits. It returns the rows the decision read, so the service recomputes the decision in Python and uses the
function's only when both agree (``quota.admit_server``). SQLite has no functions: it keeps the separate statements.

No table changes.

Revision ID: 0014_quota
Revises: 0013_dashboards
Create Date: 2026-12-07

Hand-written. Never import the ORM models here: a migration is a frozen picture of the schema at its revision.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014_quota"
down_revision: str | Sequence[str] | None = "0013_dashboards"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The rule, as usage/quota.py states it (check_request): refused when the plan has ended or is unknown; for
# servers when all servers with this one pass the plan's max_running cores (+1e-9) or memory; and when
# (allowance + top-ups) - used + 1e-6 < (running + requested cores) x horizon. The sums run over the rows in the
# order they are returned, with the same operations as quota_status, so Python repeats them exactly.
ADMIT_SERVER = r"""
CREATE OR REPLACE FUNCTION polartep_admit_server(
    p_name text, p_kind text, p_key text, p_profile text, p_cores double precision, p_memory bigint,
    p_now timestamptz, p_expires timestamptz, p_month text, p_period_start timestamptz,
    p_horizon_seconds double precision, p_admin boolean, p_plans text[], p_allowances double precision[],
    p_durations integer[], p_max_cores double precision[], p_max_memory bigint[]
)
RETURNS TABLE (
    o_source text, o_cores double precision, o_memory bigint, o_kind text, o_started timestamptz,
    o_admitted boolean
)
LANGUAGE plpgsql VOLATILE
SET TimeZone = 'UTC'
AS $$
DECLARE
    acct record;
    rec record;
    i integer;
    ends timestamptz;
    ended boolean;
    allowance double precision;
    max_c double precision;
    max_m bigint;
    used double precision := 0;
    top_up double precision := 0;
    running double precision := 0;
    server_c double precision := 0;
    server_m bigint := 0;
    admitted boolean;
BEGIN
    SELECT a.plan, a.plan_started_at, a.is_admin INTO acct
        FROM accounts a WHERE a.name = p_name FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;  -- no rows: no such account
    END IF;
    FOR rec IN
        SELECT 'open' AS source, u.cores, u.memory_bytes AS memory, u.kind, u.started_at AS started
            FROM usage_intervals u WHERE u.account_name = p_name AND u.stopped_at IS NULL
        UNION ALL
        SELECT 'reserved', r.cores, r.memory_bytes, r.kind, NULL
            FROM quota_reservations r WHERE r.account_name = p_name AND r.expires_at > p_now
                AND NOT (r.kind = p_kind AND r.key = p_key)
        UNION ALL
        SELECT 'total', t.core_seconds, 0, '', NULL
            FROM usage_month_totals t WHERE t.account_name = p_name AND t.month = p_month
        UNION ALL
        SELECT 'topup', q.cpu_hours, 0, '', NULL
            FROM quota_top_ups q WHERE q.account_name = p_name AND q.month = p_month
    LOOP
        o_source := rec.source; o_cores := rec.cores; o_memory := rec.memory; o_kind := rec.kind;
        o_started := rec.started; o_admitted := NULL;
        RETURN NEXT;
        IF rec.source = 'total' THEN
            used := used + rec.cores;
        ELSIF rec.source = 'topup' THEN
            top_up := top_up + rec.cores * 3600;
        ELSE
            running := running + rec.cores;
            IF rec.source = 'open' THEN
                used := used + rec.cores * greatest(
                    0.0, extract(epoch FROM (p_now - greatest(rec.started, p_period_start)))::double precision
                );
                CONTINUE WHEN rec.kind IN ('dask-scheduler', 'dask-worker');
            END IF;
            server_c := server_c + rec.cores;
            server_m := server_m + rec.memory;
        END IF;
    END LOOP;
    i := array_position(p_plans, acct.plan);
    IF i IS NULL THEN
        ended := true; allowance := 0; max_c := NULL; max_m := NULL;
    ELSE
        ends := CASE WHEN p_admin OR acct.is_admin OR coalesce(p_durations[i], 0) = 0 THEN NULL
                     ELSE acct.plan_started_at + make_interval(months => p_durations[i]) END;
        ended := ends IS NOT NULL AND p_now >= ends;
        allowance := CASE WHEN ended THEN 0.0 ELSE p_allowances[i] END;
        max_c := p_max_cores[i]; max_m := p_max_memory[i];
    END IF;
    admitted := NOT ended
        AND (max_c IS NULL OR NOT (server_c + p_cores > max_c + 1e-9))
        AND (max_m IS NULL OR NOT (server_m + p_memory > max_m))
        AND NOT ((allowance + top_up) - used + 1e-6 < (running + p_cores) * p_horizon_seconds);
    IF admitted THEN
        -- A spawn asked again replaces its own reservation rather than adding to it (a refusal keeps it).
        DELETE FROM quota_reservations r WHERE r.account_name = p_name AND r.kind = p_kind AND r.key = p_key;
        INSERT INTO quota_reservations (account_name, kind, key, profile, cores, memory_bytes, created_at, expires_at)
            VALUES (p_name, p_kind, p_key, p_profile, p_cores, p_memory, p_now, p_expires);
    END IF;
    o_source := 'account'; o_cores := CASE WHEN acct.is_admin THEN 1.0 ELSE 0.0 END; o_memory := 0;
    o_kind := acct.plan; o_started := acct.plan_started_at; o_admitted := admitted;
    RETURN NEXT;
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(ADMIT_SERVER)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "DROP FUNCTION IF EXISTS polartep_admit_server(text, text, text, text, double precision, bigint, "
            "timestamptz, timestamptz, text, timestamptz, double precision, boolean, text[], double precision[], "
            "integer[], double precision[], bigint[])"
        )
