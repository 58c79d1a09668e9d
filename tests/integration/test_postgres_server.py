"""The throwaway PostgreSQL server of the test run: each `postgres_url` is its own empty schema."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import psycopg

from tests.support.postgres import empty_schema


def _schema(url: str) -> str:
    return parse_qs(urlsplit(url).query)["options"][0].removeprefix("-csearch_path=")


def test_a_row_written_reads_back_in_its_own_schema(postgres_url: str) -> None:
    schema = _schema(postgres_url)
    assert schema.startswith("t_")
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SHOW search_path").fetchone() == (schema,)
        conn.execute("CREATE TABLE stories (id text PRIMARY KEY, prompt text NOT NULL)")
        conn.execute("INSERT INTO stories VALUES (%s, %s)", ("s1", "a fox"))
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT id, prompt FROM stories").fetchall() == [("s1", "a fox")]
        home = conn.execute("SELECT relnamespace::regnamespace::text FROM pg_class WHERE oid = 'stories'::regclass")
        assert home.fetchone() == (schema,)


def test_another_schema_does_not_see_the_table(postgres_url: str) -> None:
    with psycopg.connect(postgres_url) as conn:
        conn.execute("CREATE TABLE stories (id text PRIMARY KEY)")
        conn.execute("INSERT INTO stories VALUES ('s1')")
    with empty_schema() as other_url, psycopg.connect(other_url) as other:
        assert _schema(other_url) != _schema(postgres_url)
        assert other.execute("SELECT to_regclass('stories')").fetchone() == (None,)
        other.execute("CREATE TABLE stories (id text PRIMARY KEY)")  # the same name, a table of its own
        assert other.execute("SELECT count(*) FROM stories").fetchone() == (0,)
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT id FROM stories").fetchall() == [("s1",)]
