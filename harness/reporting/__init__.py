"""Turning results into something to read: the report data model, HTML, Markdown and
JUnit writers, baselines, and the show/list views of cases and the corpus."""
